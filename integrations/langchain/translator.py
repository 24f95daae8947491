"""LangChain callbacks in, Dunetrace run events out. No framework import.

LangChain gives every runnable, model, tool and retriever call its own run id
and the id of its parent. The translator keeps one small node per live call,
keyed by that id: a node knows its Dunetrace :class:`~dunetrace.Run` and the
root it belongs to, so an event finds its run with one lookup however the
calls of concurrent invokes interleave. A node is removed when its call ends;
everything under a root is removed when the root ends; roots that never end
(an abandoned stream, a dropped task) are bounded by ``max_live_runs``.

The handler (``adapter.py``) pulls plain values out of LangChain's objects and
calls the methods here.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from dunetrace.exit_reasons import COMPLETED, FINAL_ANSWER, INTERRUPTED
from dunetrace.log import warn_once
from dunetrace.open_runs import OpenRuns
from dunetrace.run import agent_version, get_current_run, reset_current_run, set_current_run

from .endings import ABANDONED_CALLS, CutCall, Ending, answer_cut, ending_of, is_interrupt
from .errors import api_error_signal
from .resume import resume_value, resumes_of
from .unknown_tools import UnknownToolCalls

if TYPE_CHECKING:
    from contextvars import Token

    from dunetrace import Dunetrace, Run

__all__ = ["CHAIN", "LLM", "RETRIEVER", "TOOL", "Translator", "applied_by_middleware", "is_control_flow"]

CHAIN, LLM, TOOL, RETRIEVER = "chain", "llm", "tool", "retriever"

_clock = time.perf_counter

#: Runs whose ``switch_model`` DunetraceMiddleware applied; a model call of
#: any other run with a ``model_override`` warns that it is not applied.
applied_by_middleware: weakref.WeakSet[Run] = weakref.WeakSet()

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


_is_interrupt = is_interrupt


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
    __slots__ = ("kind", "name", "root", "run", "started_at", "step")

    def __init__(self, kind: str, root: _Root, run: Run) -> None:
        self.kind = kind
        self.root = root
        self.run = run
        self.step = 0
        self.started_at = 0.0
        self.name = ""


class Translator(UnknownToolCalls):
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

    # -- bookkeeping ------------------------------------------------------------

    def live(self) -> tuple[int, int]:
        """(live roots, live nodes): what this translator holds right now."""
        return len(self._roots), len(self._nodes)

    def _key(self, run_id: Any, where: str) -> Hashable | None:
        # A UUID (what LangChain passes) is keyed by its int, inline at each
        # call site: UUID.__hash__ is Python code and each event does a few
        # lookups. Anything else comes here.
        if run_id is None or not isinstance(run_id, Hashable):
            warn_once(
                f"langchain-run-id:{where}",
                "dunetrace: LangChain called %s without a usable run_id (%r); event ignored",
                where,
                type(run_id).__name__,
            )
            return None
        return run_id

    def _enter(
        self,
        run_id: Hashable,
        parent_id: Any,
        kind: str,
        name: str,
        user_input: Any,
        asynchronous: bool,
        *,
        agent_name: str | None = None,
        thread_id: str | None = None,
    ) -> _Node | None:
        """The node for a starting call: under its parent's root, or a new
        root. None for a call that starts after its root ended.
        ``agent_name``: the named agent the call belongs to, when LangChain
        says (``lc_agent_name``)."""
        if parent_id.__class__ is UUID:
            parent_id = parent_id.int
        try:
            parent = self._nodes.get(parent_id) if parent_id is not None else None
        except TypeError:  # an unhashable parent id: treated as unknown
            parent = None
        if (
            parent is not None
            and not (parent.kind is TOOL and kind is CHAIN)
            and (agent_name is None or agent_name == parent.root.agent_name)
        ):
            return self._add_child(run_id, parent, kind)
        if parent is None and parent_id is not None and self._gone and self._buried(parent_id):
            with self._lock:
                self._bury([run_id])
            return None
        node = self._open_root(
            run_id, parent, kind, name, user_input, asynchronous, nested=parent_id is not None, thread_id=thread_id
        )
        node.root.agent_name = agent_name
        return node

    def child(self, run_id: int, parent_id: int, kind: str, agent_name: str | None = None) -> _Node | bool | None:
        """The fast path of a start callback whose ids are UUIDs (as ints):
        the node of a call under a live parent, None for a call that started
        after its root ended, False when the call opens a root (the caller
        then takes the full path, reading the name and input only then):
        a chain under a tool, or the first chain of another named agent."""
        parent = self._nodes.get(parent_id)
        if (
            parent is None
            or (parent.kind is TOOL and kind is CHAIN)
            or (agent_name is not None and agent_name != parent.root.agent_name)
        ):
            return False
        return self._add_child(run_id, parent, kind)

    def _add_child(self, run_id: Hashable, parent: _Node, kind: str) -> _Node | None:
        root = parent.root
        node = _Node(kind, root, parent.run)
        # No lock: dict and set updates are atomic. A root closing at the
        # same moment sets ``closed`` before it clears its nodes, so one
        # of the two sides removes this node.
        self._nodes[run_id] = node
        root.nodes.add(run_id)
        if root.closed:  # the root ended under us (a late event)
            self._nodes.pop(run_id, None)
            root.nodes.discard(run_id)
            return None
        if root.asynchronous and root.owned and get_current_run() is not root.run:
            self._make_current(root)
        return node

    def _open_root(
        self,
        run_id: Hashable,
        parent: _Node | None,
        kind: str,
        name: str,
        user_input: Any,
        asynchronous: bool,
        *,
        nested: bool = True,
        thread_id: str | None = None,
    ) -> _Node:
        """``nested``: LangChain named a parent call, one this translator
        does not know (another handler's, or one that ended)."""
        current = get_current_run()
        if current is not None and asynchronous and current in _current_in_task:
            invoker = _current_in_task[current]()
            if invoker is not None and invoker is _task():
                current = None  # a sibling invoke in the same task
        resumed = resume_value(user_input)
        if resumed is not None:
            user_input = resumed[0]  # Command(resume=value): the value is what the human said
        elif parent is not None or current is None or current.finished or current in _ours:
            user_input = self.read_input(user_input)
        if parent is not None:
            # A runnable invoked inside a tool, or a named agent that is a
            # node of another graph: a sub-agent, its own run. Its parent's
            # run.started goes first, even before that run's first model call.
            if not parent.run.started:
                self._ensure_started(parent)
            run = self.client.run(self._agent(name), user_input=user_input, parent_run_id=parent.run.run_id)
            root = _Root(run, owned=True)
        elif current is not None and not current.finished and current not in _ours:
            # The user's ``with dt.run(...)`` is active: its run takes these events.
            root = _Root(current, owned=False)
        else:
            # A run of ours still current here: a sub-agent invoked in a tool
            # whose call another handler reported. Without any parent call
            # (not even in LangChain's config context), it is a sibling: the
            # inputs of a ``batch`` open their roots one after another in the
            # caller's thread, each making its run current there.
            outer = current.run_id if nested and current is not None and not current.finished else None
            run = self.client.run(self._agent(name), user_input=user_input, parent_run_id=outer)
            root = _Root(run, owned=True)
        if root.owned and thread_id is not None:
            root.thread = (self._agent(name), thread_id)
            if resumed is not None:
                self._resume(root)
        node = _Node(kind, root, root.run)
        root.key = run_id
        # Ended elsewhere while this invoke is open (the user's ``with``
        # block exits, dt.shutdown()): its calls are answered first.
        root.run.before_end((id(self), run_id), lambda: self._ended_elsewhere(root))
        evicted: list[_Root] = []
        with self._lock:
            self._nodes[run_id] = node
            root.nodes.add(run_id)
            for old in self._roots.add(run_id, root):
                self._bury([old.key, *old.nodes])
                evicted.append(self._release(old))
        if root.owned:
            _ours.add(root.run)
            if not asynchronous:
                # Current for everything LangChain runs under this call: its
                # tools see it through get_current_run(), in other threads
                # too, since LangChain copies the context into its executors.
                # The root's end comes back to this context and resets it.
                root.previous = current
                root.token = set_current_run(root.run)
            else:
                # Under ainvoke langchain-core 1.x runs end callbacks in a task
                # of their own (``@shielded``, a copied context), so a value set
                # in the caller's task here could never be reset: it is set in
                # the step tasks instead (see _make_current).
                root.asynchronous = True
                root.task = _task()
                if current is None and root.task is not None:
                    # Nothing is current in the invoking task: the run is
                    # made current there too, so code LangChain runs at the
                    # root (a RunnableLambda's function, in a copy of this
                    # context) sees it. Never reset, and need not be: a
                    # finished run reads as no run, as before it.
                    root.previous = None
                    set_current_run(root.run)
                    _current_in_task[root.run] = weakref.ref(root.task)
        for old in evicted:
            warn_once(
                "langchain-abandoned",
                "dunetrace: a LangChain run never ended (more than %d live at once); closed as abandoned",
                self.max_live_runs,
            )
            self._end(old, ABANDONED_CALLS)
        return node

    def _resume(self, root: _Root) -> None:
        """A run that resumes an interrupted one on the same thread: it
        names it, and has its agent configuration (its first events may be
        a tool call, before any model call tells the model). Started now,
        so a later model call cannot change that configuration."""
        paused = resumes_of(self.client).paused(*root.thread) if root.thread is not None else None
        if paused is None:  # interrupted before this process saw it, or forgotten
            return
        run = root.run
        run.resumed_from = paused.run_id
        if paused.known:
            run.model = paused.model
            run.tools = list(paused.tools)
            run.agent_version = paused.agent_version
            self._start(run)

    @staticmethod
    def _make_current(root: _Root) -> None:
        """Under ainvoke: make the run current in this step's context, unless
        this is the invoking task itself. LangGraph and LangChain run each
        model call in a task, and each sync tool in an executor, with a copy
        of the context: the setting reaches the code run there and ends with
        it, never reaching the caller."""
        try:
            task = asyncio.current_task()
        except RuntimeError:  # an executor thread: no loop here
            task = None
        if task is None or task is not root.task:
            set_current_run(root.run)

    def _agent(self, name: str) -> str:
        return self.agent_id or name or "langchain"

    def _detach(self, root: _Root) -> _Root:
        # Under self._lock.
        self._roots.pop(root.key, root)
        return self._release(root)

    def _release(self, root: _Root) -> _Root:
        # Under self._lock: the root is out of the table; its calls go.
        root.closed = True
        for node_id in list(root.nodes):  # a copy: _leave discards without the lock
            # Whoever pops a node answers its call: here, or its own end callback.
            node = self._nodes.pop(node_id, None)
            if node is not None and node.kind is not CHAIN and node.step:
                root.cut.append(CutCall(node.kind, node.run, node.step, node.name, node.started_at))
        root.nodes.clear()
        return root

    def _ended_elsewhere(self, root: _Root) -> None:
        with self._lock:
            if self._roots.get(root.key) is not root:
                return  # ended here already
            self._bury([root.key, *root.nodes])
            self._detach(root)
        self._end(root, ABANDONED_CALLS)

    def _buried(self, node_id: Any) -> bool:
        try:
            return node_id in self._gone
        except TypeError:  # unhashable: never buried
            return False

    def _bury(self, ids: list[Hashable]) -> None:
        # Under self._lock.
        gone = self._gone
        for node_id in ids:
            gone[node_id] = None
        while len(gone) > 4 * self.max_live_runs + 64:
            del gone[next(iter(gone))]

    def _end(self, root: _Root, ending: Ending) -> None:
        run = root.run
        if root.invented is not None:
            self._forget_invented(root)
        run.before_end((id(self), root.key), None)
        cut, root.cut = root.cut, []
        if cut:
            answer_cut(cut, ending)
        if root.open_llms:
            with self._lock:
                run.llm_in_flight = max(0, run.llm_in_flight - root.open_llms)
                root.open_llms = 0
        token, root.token = root.token, None
        if token is not None:
            try:
                reset_current_run(token)
            except ValueError:  # ended in another context than it started in
                if get_current_run() is run:
                    set_current_run(root.previous)
        root.previous = None
        root.task = None
        if root.owned:
            if not run.started:
                self._start(run)
            exit_reason = ending.exit_reason
            if exit_reason is None:
                exit_reason = INTERRUPTED if root.interrupted else FINAL_ANSWER if root.final else COMPLETED
            if root.thread is not None:
                table = resumes_of(self.client)
                if exit_reason == INTERRUPTED:
                    table.interrupted(*root.thread, run, known=run.model is not None or bool(run.tools))
                elif ending.error is None:
                    table.completed(*root.thread)
            run.finish(ending.error, exit_reason=exit_reason)

    def _leave(self, run_id: Hashable) -> _Node | None:
        """Forget a call that ended; returns its node (None if unknown)."""
        node = self._nodes.pop(run_id, None)
        if node is None:
            return None
        root = node.root
        root.nodes.discard(run_id)
        if self._roots.get(run_id) is root:
            with self._lock:
                if self._roots.get(run_id) is root:
                    self._detach(root)
        return node

    def _end_root(self, node: _Node, error: BaseException | None) -> None:
        # Interrupts, control flow, iteration limits, cancellations and closed streams: endings.py.
        self._end(node.root, ending_of(error, is_control_flow(error)))

    def _ensure_started(
        self, node: _Node, model: str | None = None, tools: list[str] | None = None, system_prompt: Any = None
    ) -> None:
        """Emit ``run.started`` late, once the first model call tells what
        the agent is (LangGraph passes ``serialized=None`` to chains, so the
        root call does not say)."""
        run = node.run
        if run.started or not node.root.owned or node.root.run is not run:
            return
        with self._lock:
            if run.started:
                return
            if model is not None or tools or system_prompt is not None:
                run.model = model
                run.tools = list(tools or [])
                key = (system_prompt if isinstance(system_prompt, str) else repr(system_prompt), model, *run.tools)
                version = self._versions.get(key)
                if version is None:  # one per agent configuration, so cached
                    hashed = self.client.hasher.value(system_prompt) if system_prompt is not None else None
                    version = agent_version(hashed, model, run.tools)
                    if len(self._versions) >= 256:
                        self._versions.clear()
                    self._versions[key] = version
                run.agent_version = version
            self._start(run)

    @staticmethod
    def _start(run: Run) -> None:
        """``run.start()`` for a run whose parent was chosen when it opened:
        without one, Run.start() would adopt whatever run is current at this
        later point (a sibling of a ``batch``), so it is made current itself."""
        if run.parent_run_id is not None:
            run.start()
            return
        token = set_current_run(run)
        try:
            run.start()
        finally:
            reset_current_run(token)

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
        key = run_id.int if run_id.__class__ is UUID else self._key(run_id, "on_chain_end")
        if key is None:
            return
        is_root = key in self._roots
        node = self._leave(key)
        if node is None:
            return
        if is_root:
            self._end_root(node, error)
        elif error is not None and _is_interrupt(error):
            node.root.interrupted = True

    # -- models -----------------------------------------------------------------

    def llm_start(
        self,
        run_id: Any,
        parent_id: Any,
        name: str,
        model: str | None,
        tools: list[str] | None,
        system_prompt: Any,
        user_input: Any,
        asynchronous: bool = False,
        *,
        describe: Callable[[], tuple[list[str] | None, Any]] | None = None,
        output_tools: frozenset[str] | None = None,
    ) -> None:
        """``describe``: gives (tools, system_prompt) instead, read only when
        this call starts the run. ``output_tools``: tool names this call
        binds as an output schema, not as tools of the agent."""
        key = run_id.int if run_id.__class__ is UUID else self._key(run_id, "on_llm_start")
        if key is None:
            return
        node = self._enter(key, parent_id, LLM, name, user_input, asynchronous)
        if node is None:
            return
        if output_tools and not output_tools <= node.root.output_tools:
            node.root.output_tools = node.root.output_tools | output_tools
        if not node.run.started:
            if describe is not None:
                tools, system_prompt = describe()
            self._ensure_started(node, model, tools, system_prompt)
        run = node.run
        # First: after a stop policy it raises PolicyViolation, and nothing
        # below must then count a call that never happens.
        node.step = run.llm_called(model)
        if run.model_override is not None or run._prompt_additions:
            self._unapplied(run)
        with self._lock:
            run.llm_in_flight += 1
            node.root.open_llms += 1
        node.name = model or name
        node.started_at = _clock()

    @staticmethod
    def _unapplied(run: Run) -> None:
        # DunetraceMiddleware applies both before the model is called; left
        # pending here, nothing will (a plain graph, an agent without it).
        instead = (
            "add dunetrace.integrations.langchain.DunetraceMiddleware() to create_agent(middleware=[...]), "
            "or read run.model_override / run.pop_prompt_addition() in your own model node"
        )
        if run.model_override is not None and run not in applied_by_middleware:
            warn_once(
                "langchain-unapplied:switch_model",
                "dunetrace: a switch_model policy triggered but LangChain calls the agent's own model: %s",
                instead,
            )
        if run._prompt_additions:
            warn_once(
                "langchain-unapplied:inject_prompt",
                "dunetrace: an inject_prompt policy triggered but nothing adds its message to this LangChain agent: %s",
                instead,
            )

    def llm_end(
        self,
        run_id: Any,
        completion_tokens: Any = None,
        prompt_tokens: Any = None,
        finish_reason: str | None = None,
        output: Any = None,
        output_length: int | None = None,
        final: bool = True,
        *,
        error: BaseException | None = None,
        tool_calls: list[tuple[str, str, Any]] | None = None,
    ) -> None:
        """``tool_calls``: ``(tool_call_id, name, args)`` of the reply's tool
        calls, given when it has any."""
        key = run_id.int if run_id.__class__ is UUID else self._key(run_id, "on_llm_end")
        if key is None:
            return
        is_root = key in self._roots
        node = self._leave(key)
        if node is None or node.kind != LLM:
            if is_root and node is not None:
                self._end_root(node, None)  # a mismatched end of a root still ends its run
            return
        run, root = node.run, node.root
        with self._lock:
            if root.open_llms:
                root.open_llms -= 1
                run.llm_in_flight = max(0, run.llm_in_flight - 1)
        latency = (_clock() - node.started_at) * 1000
        if error is not None:
            if isinstance(error, GeneratorExit):
                # The reader of this model's stream closed it early: no failure.
                run.llm_responded(latency_ms=latency, finish_reason="partial", step=node.step)
            else:
                run.llm_responded(latency_ms=latency, finish_reason="error", step=node.step, error=error)
                signal = api_error_signal(error)
                if signal is not None:
                    run.external_signal(signal[0], source="langchain", **signal[1])
        else:
            if tool_calls:
                final = self._sort_tool_calls(root, run, tool_calls, final)
            run.llm_responded(
                completion_tokens,
                latency,
                finish_reason,
                output_length,
                prompt_tokens=prompt_tokens,
                output=output,
                step=node.step,
            )
            root.final = final
        if is_root:
            self._end_root(node, error)

    # -- tools ------------------------------------------------------------------

    def tool_start(
        self, run_id: Any, parent_id: Any, name: str, args: Any, asynchronous: bool = False, *, call_id: Any = None
    ) -> None:
        key = run_id.int if run_id.__class__ is UUID else self._key(run_id, "on_tool_start")
        if key is None:
            return
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
        key = run_id.int if run_id.__class__ is UUID else self._key(run_id, "on_tool_end")
        if key is None:
            return
        is_root = key in self._roots
        node = self._leave(key)
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
        key = run_id.int if run_id.__class__ is UUID else self._key(run_id, "on_retriever_end")
        if key is None:
            return
        is_root = key in self._roots
        node = self._leave(key)
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
