"""The LangChain translator's table of live calls, and how a root (an
invoke's run) lets go of them: a call forgotten when it ends, a root taken out
of the table when it ends, is evicted or its run ends elsewhere, and the run
then ended (endings.py says how, and answers the calls its end cut short).
No framework import."""

from __future__ import annotations

import threading
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from dunetrace.exit_reasons import COMPLETED, FINAL_ANSWER, INTERRUPTED
from dunetrace.log import warn_once
from dunetrace.run import get_current_run, reset_current_run, set_current_run

from .calls import CHAIN, _Node, _Root, is_control_flow
from .endings import ABANDONED_CALLS, CutCall, Ending, answer_cut, ending_of
from .resume import resumes_of
from .unknown_tools import UnknownToolCalls

if TYPE_CHECKING:
    from dunetrace import Dunetrace, Run
    from dunetrace.open_runs import OpenRuns

__all__ = ["RootTable"]


class RootTable(UnknownToolCalls):
    """The part of ``Translator`` that holds its live calls and ends its
    roots. Its tables are made by ``Translator.__init__``."""

    client: Dunetrace
    max_live_runs: int
    _nodes: dict[Hashable, _Node]
    _roots: OpenRuns[Hashable, _Root]
    _lock: threading.Lock
    _gone: dict[Hashable, None]

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

    def _leave_call(self, run_id: Any, where: str) -> tuple[_Node | None, bool]:
        """The opening of every end callback: forget the call that ended;
        returns its node (None if unknown, or the id unusable) and whether
        it was a root's own call, whose end ends the run."""
        key = run_id.int if run_id.__class__ is UUID else self._key(run_id, where)
        if key is None:
            return None, False
        node = self._nodes.pop(key, None)
        if node is None:
            return None, False
        root = node.root
        root.nodes.discard(key)
        # Only a root's own call has the root's key (LangChain's run ids are
        # unique): the other calls skip the table of roots.
        if root.key != key:
            return node, False
        is_root = key in self._roots
        if self._roots.get(key) is root:
            with self._lock:
                if self._roots.get(key) is root:
                    self._detach(root)
        return node, is_root

    def _detach(self, root: _Root) -> _Root:
        # Under self._lock.
        self._roots.pop(root.key, root)
        return self._release(root)

    def _release(self, root: _Root) -> _Root:
        # Under self._lock: the root is out of the table; its calls go.
        root.closed = True
        for node_id in list(root.nodes):  # a copy: _leave_call discards without the lock
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

    def _end_root(self, node: _Node, error: BaseException | None) -> None:
        # Interrupts, control flow, iteration limits, cancellations and closed streams: endings.py.
        self._end(node.root, ending_of(error, is_control_flow(error)))

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
