"""The runs a human-in-the-loop wait ended, so the run that resumes one can
name it (``run.started.payload.resumed_from``). Imports no LlamaIndex.

llama-index-workflows 2.x resumes a paused workflow as a new run
(``workflow.run(ctx=Context.from_dict(workflow, saved))``) whose saved
context carries no id of the run it was saved from: the only link is the
workflow it belongs to. So a resumed run is linked to the latest paused run
of the same workflow (the translator's key: agent id, workflow class and
agent_version) that no run has resumed yet.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["PausedRuns"]


class PausedRuns:
    """Paused run ids by workflow class, oldest first, bounded."""

    #: How many paused runs are remembered at once; the oldest are forgotten.
    max_paused = 1_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._paused: OrderedDict[str, tuple[str, str]] = OrderedDict()  # run_id -> (workflow, run_id)

    def paused(self, workflow: str, run_id: str) -> None:
        """``run_id``, a run of ``workflow``, ended waiting for a human."""
        with self._lock:
            self._paused[run_id] = (workflow, run_id)
            while len(self._paused) > self.max_paused:
                self._paused.popitem(last=False)

    def resume(self, workflow: str) -> str | None:
        """The run id a resumed run of ``workflow`` continues, taken off the
        table; None when no run of it is paused."""
        with self._lock:
            for run_id in reversed(self._paused):
                if self._paused[run_id][0] == workflow:
                    del self._paused[run_id]
                    return run_id
        return None

    def __len__(self) -> int:
        return len(self._paused)
