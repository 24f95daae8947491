"""How the LangChain translator places a starting call: under its parent's
root, or as a new root, a run of its own (a sub-agent, a resumed run, one of
a batch) or the user's current run; and when that run's ``run.started`` is
sent. No framework import."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from dunetrace.log import warn_once
from dunetrace.run import agent_version, get_current_run, set_current_run

from .calls import CHAIN, TOOL, _current_in_task, _Node, _ours, _Root, _task
from .endings import ABANDONED_CALLS
from .resume import resume_value, resumes_of
from .roots import RootTable

if TYPE_CHECKING:
    pass

__all__ = ["OpeningRoots"]


class OpeningRoots(RootTable):
    """The part of ``Translator`` that opens nodes and roots."""

    agent_id: str | None
    read_input: Callable[[Any], Any]
    _versions: dict[tuple[Any, ...], str]

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
        if parent is None:
            return False
        root = parent.root
        if (parent.kind is TOOL and kind is CHAIN) or (agent_name is not None and agent_name != root.agent_name):
            return False
        # _add_child, inline: this is most of an invoke's callbacks.
        node = _Node(kind, root, parent.run)
        self._nodes[run_id] = node
        root.nodes.add(run_id)
        if root.closed:  # the root ended under us (a late event)
            self._nodes.pop(run_id, None)
            root.nodes.discard(run_id)
            return None
        if root.asynchronous and root.owned and get_current_run() is not root.run:
            self._make_current(root)
        return node

    def _add_child(self, run_id: Hashable, parent: _Node, kind: str) -> _Node | None:
        # (child() holds a copy of these lines.)
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
