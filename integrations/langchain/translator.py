"""LangChain callbacks in, Dunetrace run events out. No framework import.

LangChain gives every runnable, model, tool and retriever call its own run id
and the id of its parent. The translator keeps one small node per live call,
keyed by that id: a node knows its Dunetrace :class:`~dunetrace.Run` and the
root it belongs to, so an event finds its run with one lookup however the
calls of concurrent invokes interleave. A node is removed when its call ends;
everything under a root is removed when the root ends; roots that never end
(an abandoned stream, a dropped task) are bounded by ``max_live_runs``.

The handler (``adapter.py``) pulls plain values out of LangChain's objects and
calls the methods here. ``Translator`` is put together from parts, each in a
module of its own: the per-call state (calls.py), the table of live calls and
the ending of roots (roots.py), the opening of nodes and roots (opening.py),
model calls (models.py) and calls of unknown tools (unknown_tools.py); chains,
tool calls (a LangChain tool call becomes ``tool.called`` here) and
retrievals are here.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from dunetrace.open_runs import OpenRuns

from .calls import CHAIN, LLM, RETRIEVER, TOOL, _clock, _Node, _Root, is_control_flow
from .endings import is_interrupt
from .models import ModelCalls, applied_by_middleware

if TYPE_CHECKING:
    from dunetrace import Dunetrace

__all__ = ["CHAIN", "LLM", "RETRIEVER", "TOOL", "Translator", "applied_by_middleware", "is_control_flow"]

_is_interrupt = is_interrupt


class Translator(ModelCalls):
    """Turns the calls of any number of concurrent LangChain invokes into
    Dunetrace runs. Thread-safe; never raises for bad input (it logs once)."""

    def __init__(
        self,
        client: Dunetrace,
        agent_id: str | None = None,
        *,
        max_live_runs: int = 1000,
        read_input: Callable[[Any], Any] | None = None,
    ) -> None:
        self.client = client
        #: Turns a root call's input into the user input to hash; only called
        #: when a run opens, so the inputs of inner calls cost nothing.
        self.read_input = read_input or (lambda value: value)
        self.agent_id = agent_id
        self.max_live_runs = max_live_runs
        self._nodes: dict[Hashable, _Node] = {}
        self._roots: OpenRuns[Hashable, _Root] = OpenRuns(max_live_runs)  # by the root call's id
        self._lock = threading.Lock()
        self._versions: dict[tuple[Any, ...], str] = {}  # (system prompt, model, tools) -> agent_version
        #: Roots waiting for the answer to a call of a tool they do not have:
        #: while 0, the handler reads no chain output.
        self.invented_pending = 0
        # Calls of invokes whose run ended while they went on (evicted, or
        # the run ended elsewhere): what starts under them later is theirs,
        # not a new run. Insertion order: oldest first; bounded.
        self._gone: dict[Hashable, None] = {}

    # -- chains -----------------------------------------------------------------

    def chain_start(
        self,
        run_id: Any,
        parent_id: Any,
        name: str,
        user_input: Any,
        asynchronous: bool = False,
        *,
        agent_name: str | None = None,
        thread_id: str | None = None,
    ) -> None:
        """``agent_name``: the ``lc_agent_name`` LangChain marks a named
        agent's calls with. ``thread_id``: LangGraph's, for a root call (see
        resume.py)."""
        key = run_id.int if run_id.__class__ is UUID else self._key(run_id, "on_chain_start")
        if key is not None:
            self._enter(
                key, parent_id, CHAIN, name, user_input, asynchronous, agent_name=agent_name, thread_id=thread_id
            )

    def chain_end(self, run_id: Any, error: BaseException | None = None) -> None:
        node, is_root = self._leave_call(run_id, "on_chain_end")
        if node is None:
            return
        if is_root:
            self._end_root(node, error)
        elif error is not None and _is_interrupt(error):
            node.root.interrupted = True

    # -- tools ------------------------------------------------------------------

    def tool_start(
        self, run_id: Any, parent_id: Any, name: str, args: Any, asynchronous: bool = False, *, call_id: Any = None
    ) -> None:
        key = run_id.int if run_id.__class__ is UUID else self._key(run_id, "on_tool_start")
        if key is None:
            return
        # A call under a live parent (nearly every one): child(), one lookup.
        node = self.child(key, parent_id.int, TOOL) if parent_id.__class__ is UUID else False
        if node is False:
            node = self._enter(key, parent_id, TOOL, name, args, asynchronous)
        if node is None:
            return
        if node.root.invented is not None and isinstance(call_id, str) and call_id in node.root.invented:
            self._answered_invented(node.root, call_id)  # a tool added since: reported by its own callbacks
        if not node.run.started:
            self._ensure_started(node)
        node.name = name
        node.step = node.run.tool_called(name, args)
        node.started_at = _clock()
        node.root.final = False

    def tool_end(self, run_id: Any, *, output: Any = None, failed: bool = False, error: Any = None) -> None:
        """A tool returned (``failed``: it returned an error message) or
        raised (``error`` an exception)."""
        node, is_root = self._leave_call(run_id, "on_tool_end")
        if node is None or node.kind != TOOL:
            if is_root and node is not None:
                self._end_root(node, None)  # a mismatched end of a root still ends its run
            return
        raised = isinstance(error, BaseException)
        latency = (_clock() - node.started_at) * 1000
        if raised and is_control_flow(error):
            # interrupt() in the tool (or a handoff): a pause, not a failure;
            # the tool is answered, and a resuming run calls it again.
            if _is_interrupt(error):
                node.root.interrupted = True
            node.run.tool_responded(node.name, True, latency_ms=latency, step=node.step)
        elif raised or failed:
            node.run.tool_responded(node.name, False, latency_ms=latency, error=error, step=node.step)
        else:
            node.run.tool_responded(node.name, True, latency_ms=latency, output=output, step=node.step)
        if is_root:
            self._end_root(node, error if raised else None)

    # -- retrievers -------------------------------------------------------------

    def retriever_start(self, run_id: Any, parent_id: Any, name: str, query: Any, asynchronous: bool = False) -> None:
        key = run_id.int if run_id.__class__ is UUID else self._key(run_id, "on_retriever_start")
        if key is None:
            return
        node = self._enter(key, parent_id, RETRIEVER, name, query, asynchronous)
        if node is None:
            return
        if not node.run.started:
            self._ensure_started(node)
        node.name = name
        node.step = node.run.retrieval_called(name, query)
        node.started_at = _clock()

    def retriever_end(
        self,
        run_id: Any,
        *,
        result_count: int | None = None,
        top_score: float | None = None,
        error: BaseException | None = None,
    ) -> None:
        node, is_root = self._leave_call(run_id, "on_retriever_end")
        if node is None or node.kind != RETRIEVER:
            if is_root and node is not None:
                self._end_root(node, None)  # a mismatched end of a root still ends its run
            return
        latency = (_clock() - node.started_at) * 1000
        # A failed retrieval found nothing: reported as zero results.
        count = 0 if error is not None else result_count
        node.run.retrieval_responded(node.name, count, top_score, latency, step=node.step)
        if is_root:
            self._end_root(node, error)
