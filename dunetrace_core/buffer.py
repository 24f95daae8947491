"""The bounded buffer between the agent and the network: the caller's side,
flush and shutdown, and the counts of what became of every event.

Callers append to a deque and return: no lock, no I/O, no hook unless a
plugin asked for one. ``Run._emit`` does this inline, reading the fast
path's public attributes (``queue``, ``room``, ``wake_at``, ``wake``):
a method call there would be the agent's largest cost per event. Anything
else takes :meth:`Buffer.put`.

The drain thread, started lazily with the first event, turns what is queued
into batches and delivers them (``drain.py``, with ``sender.py`` beside it
and ``rebatch.py`` for batches the receiver refuses in part).

Memory is bounded by ``max_queue_size`` events (queued plus awaiting
delivery). Past that bound, new events are dropped and counted
(``queue_full``); ``run.completed`` and ``run.errored`` may use a further
``terminal_reserve`` so a run that lost events is still seen to end, and
carries the number it lost.
"""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections import Counter, deque
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

from .drain import Draining
from .export import ExportResult
from .log import warn_once
from .ratelimit import RequestWindow
from .rebatch import NO_LIMIT, PendingBatch
from .sender import Sender

if TYPE_CHECKING:
    from collections.abc import Callable

    from .options import Options
    from .plugins import PluginHost

__all__ = ["Buffer"]

TERMINAL = frozenset(("run.completed", "run.errored"))

_live: weakref.WeakSet[Buffer] = weakref.WeakSet()


class Buffer(Draining):
    """One client's queue of events, its drain thread and its counts."""

    def __init__(
        self,
        options: Options,
        host: PluginHost,
        deploy_sender: Callable[[dict[str, Any]], None] | None = None,
        before_drain: Callable[[], None] | None = None,
    ) -> None:
        self._options = options
        self._host = host
        self._deploy_sender = deploy_sender
        self._before_drain = before_drain
        self._disabled = not options.enabled
        # A disabled client takes every event down the slow path, which drops
        # it without counting: nothing was lost, nothing was asked for.
        self._limit = 0 if self._disabled else options.max_queue_size
        self._hard_limit = options.max_queue_size + options.terminal_reserve
        #: The quiet batch size, and the most a batch may grow to under a
        #: backlog or a steady stream.
        self.batch_size = min(options.batch_size, options.max_batch_size)
        self._ceiling = options.max_batch_size
        self._reset()
        _live.add(self)

    # -- state (also rebuilt in a forked child) ------------------------------

    def _reset(self) -> None:
        #: What callers queued: (run, event_type, step, timestamp, payload)
        #: tuples, or wire dicts when a dunetrace_event plugin has seen them.
        self.queue: deque[Any] = deque()
        self._deploys: deque[dict[str, Any]] = deque(maxlen=256)
        self._pending: deque[PendingBatch] = deque()  # drain thread only
        self._open: dict[str, PendingBatch] = {}  # agent_id -> last batch still taking events
        self._pending_events = 0
        #: How long the queue may grow on the callers' fast path (Run._emit):
        #: the bound less what the drain thread holds, or 0 while every event
        #: must take put() (no thread yet, closed, a dunetrace_event plugin).
        #: Refreshed by whoever changes one of those.
        self.room = 0
        #: Set to wake the drain thread early (a batch is full, a flush).
        self.wake = threading.Event()
        self._progress = threading.Condition()
        self._lock = threading.Lock()  # drops and counters; never held across I/O
        self._thread: threading.Thread | None = None
        #: Batches out, by agent; batches to retry before any other; the
        #: sender threads, those waiting for a batch, and their results.
        self._out: dict[str, PendingBatch] = {}
        self._again: list[PendingBatch] = []
        self._senders: list[Sender] = []
        self._idle: list[Sender] = []
        self._results: SimpleQueue[tuple[Sender | None, PendingBatch, ExportResult]] = SimpleQueue()
        self._stopping = False
        self._closed = False
        #: Set by close() once its time is up: no batch leaves after that,
        #: so what close() reports as left stays left.
        self._halted = False
        self._retry_at = 0.0
        self._failures = 0
        self._window = RequestWindow()  # when requests may go, after a 429
        self._paced_at = 0.0  # paced: when the next batch may go
        # After a 413: the smallest body refused, and the largest accepted
        # below it, in bytes. Batches are cut to the latter before they go.
        self._body_limit = NO_LIMIT
        self._body_ok = 0
        self._size = self.batch_size  # events per batch now: grows under a backlog
        #: Queued events that wake the drain thread (Run._emit reads it): a
        #: batch's worth, ``_size``, or the ceiling while the drain lingers,
        #: kept so by ``Draining._resize``.
        self.wake_at = self._ceiling if self._lingers else self._size
        # When the drain last went back to sleep, and the events it left
        # queued then: what arrived since tells the stream's rate.
        self._drained_at = time.monotonic()
        self._left = 0
        self._last_send = 0.0
        self._last_retry_log = -1e9
        self._busy = False
        self._flushing = 0
        self._id_prefix = f"{os.urandom(6).hex()}-"
        self._next_id = 0
        self.sent = 0
        self.batches_sent = 0
        self.retries = 0
        self.unconfirmed = 0
        self.dropped: Counter[str] = Counter()
        self._dropped_reported = 0
        self._last_report = time.monotonic()

    def refresh_room(self) -> None:
        if self._thread is None or self._closed or self._host.wants_events:
            self.room = 0
        else:
            self.room = self._limit - self._pending_events

    def _after_fork_in_child(self) -> None:
        # The parent's queue is the parent's to send; the child starts empty,
        # with a lock and a thread of its own (the parent's thread is gone).
        self._reset()

    # -- the caller's side ---------------------------------------------------

    def put(self, event: tuple[Any, ...] | dict[str, Any], event_type: str) -> bool:
        """Queue one event; False when it was dropped (and counted).

        ``Run._emit`` inlines the common case; this is the rest: the first
        event, a full queue, a closed or disabled client."""
        if self._disabled:
            return True
        queue = self.queue
        size = len(queue) + self._pending_events
        if size >= self._limit and (self._closed or size >= self._hard_limit or event_type not in TERMINAL):
            self.count_drop("shutdown" if self._closed else "queue_full")
            return False
        if self._closed:
            self.count_drop("shutdown")
            return False
        queue.append(event)
        if self._thread is None:
            self._start()
        elif len(queue) == self.wake_at:
            self.wake.set()
        return True

    def put_deploy(self, payload: dict[str, Any]) -> None:
        if self._closed or self._disabled:
            return
        self._deploys.append(payload)
        if self._thread is None:
            self._start()
        self.wake.set()

    def count_drop(self, reason: str, n: int = 1) -> None:
        with self._lock:
            self.dropped[reason] += n
            if self.dropped[reason] > n:  # warned already: keep the full-queue path cheap
                return
        if reason == "queue_full":
            warn_once(
                f"queue_full:{id(self)}",
                "dunetrace: event queue full (max_queue_size=%d); new events are being "
                "dropped and counted (see dt.stats()); the count is logged as it grows",
                self._limit,
            )
        elif reason == "shutdown":
            warn_once(f"shutdown-drop:{id(self)}", "dunetrace: events after shutdown() are dropped")

    def start(self) -> None:
        """Start the drain thread now rather than with the first event."""
        if self._thread is None and not self._disabled:
            self._start()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None or self._closed:
                return
            thread = threading.Thread(target=self._run, name="dunetrace-drain", daemon=True)
            self._thread = thread
            self.refresh_room()
        try:
            thread.start()
        except RuntimeError:
            # "can't create new thread at interpreter shutdown": nothing
            # will send these; the exit report counts them.
            self._thread = None
            self.room = 0

    # -- flush and shutdown --------------------------------------------------

    def queued(self) -> int:
        return len(self.queue) + self._pending_events

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued before this call is delivered or
        dropped, at most ``timeout`` seconds. True when nothing is left."""
        deadline = time.monotonic() + timeout
        if self._thread is None:
            if self.queued() or self._deploys:
                self._start()
            if self._thread is None:
                return not self.queued()
        if threading.current_thread() is self._thread:
            return not self.queued()
        with self._progress:  # held but while waiting: flushers count one at a time
            self._flushing += 1  # the drain does not linger while a flush waits
            try:
                while self.queued() or self._busy or self._deploys:
                    self.wake.set()
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._progress.wait(min(remaining, 0.05))
            finally:
                self._flushing -= 1
        return True

    def close(self, timeout: float) -> bool:
        """Flush, then stop the thread. Events after this are dropped, and
        no batch leaves after ``timeout``: what is still queued then is left
        (see :meth:`final_counts`)."""
        done = self.flush(timeout)
        self._closed = True
        self.room = 0
        self._halted = True
        self._stopping = True
        self.wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            # Batches already out get a moment for their answer.
            thread.join(0.5)
        for sender in self._senders:
            sender.stop()
        return done

    def final_counts(self) -> dict[str, Any]:
        """After close(): events ``delivered``, ``dropped`` by reason,
        ``left`` (never sent) and ``in_flight`` (sent, no answer yet)."""
        # Bounded: called from a SIGTERM handler, this thread may be the one
        # the signal interrupted inside the lock.
        locked = self._lock.acquire(timeout=1.0)
        try:
            dropped = dict(self.dropped)
            sent = self.sent
            in_flight = sum(g.batch.size for g in list(self._out.values()) if g.batch is not None)
            left = len(self.queue) + self._pending_events - in_flight
        finally:
            if locked:
                self._lock.release()
        return {"delivered": sent, "dropped": dropped, "left": left, "in_flight": in_flight}

    def stats(self) -> dict[str, Any]:
        with self._lock:
            dropped = dict(self.dropped)
        return {
            "queued": self.queued(),
            "sent": self.sent,
            "batches_sent": self.batches_sent,
            "retries": self.retries,
            "unconfirmed": self.unconfirmed,
            "dropped": dropped,
            "dropped_total": sum(dropped.values()),
        }


def _after_fork() -> None:
    for buffer in list(_live):
        buffer._after_fork_in_child()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork)
