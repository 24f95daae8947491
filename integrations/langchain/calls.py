"""What the LangChain translator keeps while calls are live, and the
module-wide sets it shares: a root per Dunetrace run (the outermost call of an
invoke), a node per live call (keyed by LangChain's run id), the kinds of
call, and how LangGraph's control flow is told from a failure. No framework
import."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from dunetrace.model_calls import FrameworkModelCall

from .endings import CutCall

if TYPE_CHECKING:
    from contextvars import Token

    from dunetrace import Run

__all__ = ["CHAIN", "LLM", "RETRIEVER", "TOOL", "is_control_flow"]

CHAIN, LLM, TOOL, RETRIEVER = "chain", "llm", "tool", "retriever"

_clock = time.perf_counter

#: Runs opened by a LangChain translator (as opposed to a user's ``dt.run``):
#: a new root found inside one of them is a sub-agent, a child run.
_ours: weakref.WeakSet[Run] = weakref.WeakSet()

#: Runs of ours made current in the task that invoked them under ainvoke,
#: with that task: a root that opens later in the same task while one is
#: live is a second invoke read in turn (two astreams), not a sub-agent.
_current_in_task: weakref.WeakKeyDictionary[Run, weakref.ref[asyncio.Task[Any]]] = weakref.WeakKeyDictionary()


def _task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no loop in this thread
        return None


def is_control_flow(error: Any) -> bool:
    """LangGraph's ``GraphInterrupt`` / ``GraphBubbleUp`` (and ``ParentCommand``)
    travel through ``on_*_error`` but are control flow, not failures. Found by
    class name so that this module imports no langgraph."""
    return any(cls.__name__ == "GraphBubbleUp" for cls in type(error).__mro__)


class _Root:
    """One Dunetrace run seen from LangChain: the outermost call of an invoke."""

    __slots__ = (
        "agent_name",
        "asynchronous",
        "closed",
        "cut",
        "final",
        "interrupted",
        "invented",
        "key",
        "nodes",
        "open_llms",
        "output_tools",
        "owned",
        "previous",
        "run",
        "task",
        "thread",
        "token",
    )

    def __init__(self, run: Run, owned: bool) -> None:
        self.run = run
        self.owned = owned
        self.token: Token[Run | None] | None = None
        self.previous: Run | None = None
        self.nodes: set[Hashable] = set()
        self.final = False  # the last LLM reply was an answer, not tool calls
        self.closed = False
        self.open_llms = 0
        # LangGraph's interrupt() travels as a GraphInterrupt error through
        # the tool and node callbacks, but the invoke returns normally.
        self.interrupted = False
        self.asynchronous = False  # started by ainvoke / astream (LangChain's async dispatch)
        # The name of the create_agent(name=...) agent this run is: a chain of
        # another named agent inside it is a sub-agent, a child run.
        self.agent_name: str | None = None
        self.task: asyncio.Task[Any] | None = None  # the invoking task, then
        # Tool names bound to its model calls as an output schema (structured
        # output), not tools of the agent: a reply calling only these is an answer.
        self.output_tools: frozenset[str] = frozenset()
        # tool_call_id -> (name, args) of calls a model reply made to tools
        # the agent does not have, until their answer is seen (unknown_tools.py).
        self.invented: dict[str, tuple[str, Any]] | None = None
        self.cut: list[CutCall] = []  # calls still open when the root ended
        # (agent, LangGraph thread_id): where an interrupt of this run is
        # remembered for the Command(resume=...) that continues it.
        self.thread: tuple[str, str] | None = None
        self.key: Hashable = None  # its id in Translator._roots


class _Node:
    __slots__ = ("kind", "model_call", "name", "root", "run", "started_at", "step")

    def __init__(self, kind: str, root: _Root, run: Run) -> None:
        self.kind = kind
        #: An LLM node's mark: wrapped OpenAI/Anthropic clients stay silent
        #: in the context of this call (dunetrace.model_calls).
        self.model_call: FrameworkModelCall | None = None
        self.root = root
        self.run = run
        self.step = 0
        self.started_at = 0.0
        self.name = ""
