"""The threads that deliver batches beside the drain thread.

The drain thread (``drain.py``) decides what goes out; while it builds the
next batches, a sender offers one batch to the exporters and reports the
result on a queue the drain thread reads.
"""

from __future__ import annotations

import threading
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

from .export import ExportResult
from .lifecycle import quiet_signals
from .log import capture_internal_errors

if TYPE_CHECKING:
    from collections.abc import Callable

    from .export import ExportBatch

__all__ = ["FAILED", "Sender"]


class Sender:
    """A delivery thread: it offers one batch at a time, handed over by the
    drain thread, to the exporters, and reports the result on the queue
    the drain thread reads. The drain thread keeps at most two batches out,
    never two of one agent."""

    def __init__(self, export: Callable[[ExportBatch], ExportResult], results: SimpleQueue[Any]) -> None:
        self._export = export
        self._results = results
        self._cond = threading.Condition()
        self._group: Any | None = None
        self._thread: threading.Thread | None = None
        self._stopping = False

    def submit(self, group: Any) -> bool:
        """Start delivering ``group.batch`` (``group``: the drain thread's
        record of a pending batch, handed back with the result); False when
        this sender cannot (it was stopped, or no thread can start)."""
        with self._cond:
            if self._stopping:
                return False
            if self._thread is None or not self._thread.is_alive():
                thread = threading.Thread(target=self._run, name="dunetrace-send", daemon=True)
                try:
                    thread.start()
                except RuntimeError:  # interpreter shutdown
                    return False
                self._thread = thread
            self._group = group
            self._cond.notify_all()
        return True

    def stop(self) -> None:
        """The thread ends once a batch handed over is delivered."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def _run(self) -> None:
        quiet_signals()
        while True:
            with self._cond:
                while self._group is None and not self._stopping:
                    self._cond.wait()
                group, self._group = self._group, None
            if group is None:
                return
            result = FAILED
            try:
                with capture_internal_errors("drain"):
                    result = self._export(group.batch)
            finally:
                self._results.put((self, group, result))


#: What the sender reports when delivering raised: keep the batch.
FAILED = ExportResult.retry(reason="internal error")
