"""The bounded buffer between the agent and the network.

Callers append to a deque and return: no lock, no I/O, no hook unless a
plugin asked for one. A daemon thread, started lazily with the first event,
wakes every ``flush_interval`` seconds (or as soon as a batch is full),
groups what is queued into per-agent batches and hands the oldest batch to
the exporters. Batches are ``batch_size`` events while the queue is quiet;
while a backlog builds (events arrive faster than requests carry them)
they double up to ``max_batch_size``, after a 429 or a failure with a
backlog they go straight to it, and they shrink back once the backlog has
cleared. A batch that must be retried goes first once the retry is due,
and no later batch of its agent goes before it, so no later event of the
same run overtakes it. After a 429, ``ratelimit.py`` says when the next
request may go; a batch the receiver refuses in part (413, 422) is remade
in its place (``rebatch.py``).

While the head batch is out, a second thread may deliver the oldest full
batch of another agent beside it (see :class:`Sender`). A run belongs to
one agent, so this never reorders a run's events; the receiver works on
one request while it reads or syncs the other, and under a backlog the
next batches are built while these are out.

Memory is bounded by ``max_queue_size`` events (queued plus awaiting
delivery). Past that bound, new events are dropped and counted
(``queue_full``); ``run.completed`` and ``run.errored`` may use a further
``terminal_reserve`` so a run that lost events is still seen to end, and
carries the number it lost.
"""

from __future__ import annotations

import os
import random
import threading
import time
import weakref
from collections import Counter, deque
from itertools import islice
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

from .encoding import encode_body
from .export import ExportBatch, ExportResult
from .lifecycle import quiet_signals
from .log import capture_internal_errors, logger, warn_once
from .ratelimit import RequestWindow
from .rebatch import NO_LIMIT, PendingBatch, Reshaping
from .sender import Sender

if TYPE_CHECKING:
    from collections.abc import Callable

    from .options import Options
    from .plugins import PluginHost

__all__ = ["Buffer"]

TERMINAL = frozenset(("run.completed", "run.errored"))

_CHUNK = 32

#: Batches out at once (of as many agents), while the receiver is healthy.
_SLOTS = 2

#: The longest Retry-After obeyed, in seconds.
MAX_RETRY_AFTER = 600.0

_live: weakref.WeakSet[Buffer] = weakref.WeakSet()


class Buffer(Reshaping):
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
        #: The quiet batch size (a full one wakes the drain: Run._emit reads
        #: it), and the most a batch may grow to under a backlog.
        self._batch_size = min(options.batch_size, options.max_batch_size)
        self._ceiling = options.max_batch_size
        self._reset()
        _live.add(self)

    # -- state (also rebuilt in a forked child) ------------------------------

    def _reset(self) -> None:
        # (run, event_type, step, timestamp, payload) tuples, or wire dicts
        # when a dunetrace_event plugin has seen them.
        self._queue: deque[Any] = deque()
        self._deploys: deque[dict[str, Any]] = deque(maxlen=256)
        self._pending: deque[PendingBatch] = deque()  # drain thread only
        self._open: dict[str, PendingBatch] = {}  # agent_id -> last batch still taking events
        self._pending_events = 0
        #: How long the queue may grow on the callers' fast path (Run._emit):
        #: the bound less what the drain thread holds, or 0 while every event
        #: must take put() (no thread yet, closed, a dunetrace_event plugin).
        #: Refreshed by whoever changes one of those.
        self._room = 0
        self._wake = threading.Event()
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
        self._size = self._batch_size  # events per batch now: grows under a backlog
        self._last_send = 0.0
        self._last_retry_log = -1e9
        self._busy = False
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
            self._room = 0
        else:
            self._room = self._limit - self._pending_events

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
        queue = self._queue
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
        elif len(queue) == self._batch_size:
            self._wake.set()
        return True

    def put_deploy(self, payload: dict[str, Any]) -> None:
        if self._closed or self._disabled:
            return
        self._deploys.append(payload)
        if self._thread is None:
            self._start()
        self._wake.set()

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
            self._room = 0

    # -- flush and shutdown --------------------------------------------------

    def queued(self) -> int:
        return len(self._queue) + self._pending_events

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
        with self._progress:
            while self.queued() or self._busy or self._deploys:
                self._wake.set()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._progress.wait(min(remaining, 0.05))
        return True

    def close(self, timeout: float) -> bool:
        """Flush, then stop the thread. Events after this are dropped, and
        no batch leaves after ``timeout``: what is still queued then is left
        (see :meth:`final_counts`)."""
        done = self.flush(timeout)
        self._closed = True
        self._room = 0
        self._halted = True
        self._stopping = True
        self._wake.set()
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
            left = len(self._queue) + self._pending_events - in_flight
        finally:
            if locked:
                self._lock.release()
        return {"delivered": sent, "dropped": dropped, "left": left, "in_flight": in_flight}

    # -- the drain thread ----------------------------------------------------

    def _run(self) -> None:
        quiet_signals()
        interval = self._options.flush_interval
        while True:
            wait = interval
            due = self._retry_at or self._paced_at
            if self._pending and due:
                wait = max(0.0, min(interval, due - time.monotonic()))
            self._wake.wait(wait)
            self._wake.clear()
            self._busy = True
            if self._before_drain is not None:
                with capture_internal_errors("drain plugins"):
                    self._before_drain()
            with capture_internal_errors("drain"):
                self._drain()
            self._busy = False
            with self._progress:
                self._progress.notify_all()
            if self._stopping:
                return

    def _drain(self) -> None:
        while self._deploys:
            payload = self._deploys.popleft()
            if self._deploy_sender is not None:
                self._deploy_sender(payload)
        # Healthy, take two batches ahead of the request, not the whole queue:
        # the first request leaves at once instead of after a long backlog
        # has been turned into dicts. While the receiver fails or paces us,
        # take everything: a sealed batch keeps a backlog as bytes.
        paced = self._window.active(time.monotonic())  # a 429 in the last minute
        if not paced and len(self._queue) + self._pending_events < self._batch_size:
            self._size = self._batch_size  # the backlog has cleared
        ahead = None if self._retry_at or paced else 2 * self._size
        self._take(ahead)
        out = self._out
        while True:
            self._dispatch(ahead)
            if not out:
                # What arrived while the last batches were out waits for the
                # next tick, unless it already fills a batch: a fast receiver
                # must not turn into a stream of tiny requests.
                if self._queue and (len(self._queue) >= self._size or self._stopping) and not self._halted:
                    self._take(ahead)
                    continue
                break
            if ahead is not None:
                # Build the next batches while these are out, not after, a
                # chunk at a time: an answer waits for one chunk at most, and
                # sleep(0) lets the sender threads have the interpreter lock
                # between chunks (else they wait out the 5 ms switch interval).
                while len(self._queue) >= self._size and self._results.empty():
                    self._take(4 * _CHUNK)
                    time.sleep(0)
            sender, group, result = self._results.get()
            if sender is not None:
                self._idle.append(sender)
            del out[group.agent_id]
            if result.outcome != "retry":  # answered, and so counted by a rate limit
                self._window.record(time.monotonic())
            if result.outcome == "split":
                self._refused(group, result)
                continue
            if result.outcome == "retry":
                self._again.append(group)  # it goes first once the retry is due
                if self._retry_at > time.monotonic():  # the other batch out failed too: one wait for both
                    self.retries += 1
                else:
                    self._schedule_retry(group.batch, result)  # type: ignore[arg-type]
                continue
            if not self._retry_at:
                self._failures = 0
            self._grow()
            self._settle(group, result)
        self._report_drops()

    def _grow(self) -> None:
        """A request came back and a batch's worth or more still waits: a
        backlog, so bigger batches (fewer requests for the same events)."""
        if len(self._queue) >= self._size and self._size < self._ceiling:
            self._size = min(self._ceiling, self._size * 2)

    def _dispatch(self, ahead: int | None) -> None:
        """Hand out batches until two are out (one while retrying or paced,
        ``ahead`` None), or none may go yet."""
        out = self._out
        while len(out) < (1 if ahead is None else _SLOTS) and not self._halted:
            now = time.monotonic()
            if self._retry_at:
                if now < self._retry_at:
                    return
                self._retry_at = 0.0  # due: this is the retry
            self._paced_at = 0.0
            if self._window.active(now):
                # Paced after a 429: a full batch as soon as the server's
                # window has room, a partial one at the sustained rate;
                # meanwhile the batches fill.
                head = self._next_out(ahead, peek=True)
                if head is None:
                    return
                at = self._window.next_send(now, self._last_send, self._fill(head))
                if at > now:
                    self._paced_at = at
                    return
            alone = not out
            group = self._next_out(ahead)
            if group is None:
                return
            self._last_send = now
            out[group.agent_id] = group
            if alone and (ahead is None or self._next_out(ahead, peek=True) is None):
                # Nothing to deliver beside it: from this thread, with no
                # hand-over to a sender (each costs a wait for the GIL).
                self._results.put((None, group, self._export(group.batch)))  # type: ignore[arg-type]
                return
            if not self._idle:
                self._senders.append(Sender(self._export, self._results))
                self._idle.append(self._senders[-1])
            sender = self._idle.pop()
            if not sender.submit(group):
                # No thread can start (interpreter shutdown): deliver it here.
                self._results.put((sender, group, self._export(group.batch)))  # type: ignore[arg-type]

    def _next_out(self, ahead: int | None, peek: bool = False) -> PendingBatch | None:
        """The next batch to hand out: one that failed and is due again; the
        head, sealed now if still open; or the first pending batch of an
        agent with none out, if it is full. (An agent's first pending batch
        that is still open may grow; a later one would overtake it.) With
        ``peek``, only whether there is one: nothing is taken or sealed."""
        out = self._out
        pending = self._pending
        if self._again:
            return self._again[0] if peek else self._again.pop(0)
        if not pending:
            return None
        head = pending[0]
        if head.agent_id not in out:
            if peek:
                return head
            if head.batch is None and ahead is not None:
                # Still open: more of its agent's events may be queued behind
                # other agents'. Take a few chunks more, so it leaves full.
                for _ in range(4):
                    if head.batch is not None or not self._queue:
                        break
                    self._take(ahead)
            if head.batch is None:
                self._seal(head)
            return head
        seen = set(out)
        for group in islice(pending, 1, 16):
            if group.agent_id not in seen:
                if group.batch is not None:
                    return group
                seen.add(group.agent_id)
        return None

    def _settle(self, group: PendingBatch, result: ExportResult) -> None:
        """A batch delivered or given up: it leaves the pending batches."""
        if self._pending[0] is group:
            self._pending.popleft()
        else:
            self._pending.remove(group)
        n = group.batch.size if group.batch is not None else 0
        with self._lock:
            self._pending_events -= n
            self.refresh_room()
            if result.outcome == "ok":
                self.sent += n
                self.batches_sent += 1
                self.unconfirmed += result.unconfirmed
                if self._body_limit != NO_LIMIT and group.batch is not None:
                    size = len(group.batch.body)
                    if self._body_ok < size < self._body_limit:
                        self._body_ok = size
            else:
                self.dropped[result.reason or "export_failed"] += n

    def _take(self, limit: int | None = None) -> None:
        """Move queued events (at most about ``limit``) into per-agent
        batches, in arrival order."""
        left = len(self._queue) if limit is None else limit
        queue = self._queue
        size = self._size
        opened = self._open
        pending = self._pending
        prefix = self._id_prefix
        popleft = queue.popleft
        while queue and left > 0:
            # A small chunk at a time, counted as pending before it leaves
            # the deque: callers never see room that is not there (the bound
            # holds), and near the bound at most one chunk is refused early.
            n = min(len(queue), _CHUNK)
            left -= n
            with self._lock:
                self._pending_events += n
                self.refresh_room()
            next_id = self._next_id
            for _ in range(n):
                item = popleft()
                if type(item) is tuple:
                    # Run.wire_event plus the event_id, inlined: this loop is
                    # the drain's cost per event (a test holds the two equal).
                    run, event_type, step, timestamp, payload = item
                    agent = run.agent_id
                    event = {
                        "event_type": event_type,
                        "run_id": run.run_id,
                        "agent_id": agent,
                        "agent_version": run.agent_version,
                        "step_index": step,
                        "timestamp": timestamp,
                        "payload": payload,
                        "parent_run_id": run.parent_run_id,
                        "event_id": prefix + str(next_id),
                    }
                else:  # already a dict: it went through dunetrace_event plugins
                    event = item
                    agent = event["agent_id"]
                    event["event_id"] = prefix + str(next_id)
                next_id += 1
                group = opened.get(agent)
                if group is None:
                    group = opened[agent] = PendingBatch(agent)
                    pending.append(group)
                events = group.events
                events.append(event)
                if len(events) >= size:
                    # A full batch can take no more events: encode it now, so
                    # a backlog (the backend is down) costs bytes, not dicts.
                    self._seal(group)
            self._next_id = next_id

    def _seal(self, group: PendingBatch) -> None:
        data = encode_body({"api_key": self._options.api_key, "agent_id": group.agent_id, "events": group.events})
        if self._retry_at or self._window.until:
            # Delivery is failing or paced, so this batch may wait a while:
            # keep an exact copy. orjson returns its output in the buffer it
            # grew by doubling, up to twice the body's length in memory.
            data = memoryview(data).tobytes()
        group.batch = ExportBatch(group.agent_id, data, len(group.events))
        group.events = []
        if self._open.get(group.agent_id) is group:
            del self._open[group.agent_id]
        if self._body_limit != NO_LIMIT and len(data) > self._fit_size() and group.batch.size > 1:
            self._fit(group)

    def _export(self, batch: ExportBatch) -> ExportResult:
        batch.attempts += 1
        results = self._host.hook.dunetrace_export(batch=batch)
        if not results:
            warn_once(
                "no-exporter",
                "dunetrace: no exporter is registered (export='none' and no plugin implements "
                "dunetrace_export); events are dropped",
            )
            return ExportResult.drop("no_exporter")
        retry = [r for r in results if r is not None and r.outcome == "retry"]
        if retry:
            waits = [r.retry_after for r in retry if r.retry_after is not None]
            throttled = any(r.throttled for r in retry)
            return ExportResult.retry(max(waits) if waits else None, retry[0].reason, throttled)
        unconfirmed = 0
        for r in results:
            if r is None:
                continue
            if r.outcome == "split":
                return r
            if r.outcome == "drop" and not batch.delivered_by:
                return r
            unconfirmed = max(unconfirmed, r.unconfirmed)
        return ExportResult.ok(unconfirmed)

    def _schedule_retry(self, batch: ExportBatch, result: ExportResult) -> None:
        self.retries += 1
        opts = self._options
        now = time.monotonic()
        if result.throttled:
            # The ingest API allows 60 requests a minute per client (a sliding
            # window) and sends no Retry-After: from now on, batches of
            # max_batch_size leave as the window has room (ratelimit.py),
            # until a minute passes without a 429. A Retry-After says when.
            self._size = self._ceiling
            if result.retry_after is None:
                self._window.throttled(now)
                delay = max(0.0, self._window.next_send(now, self._last_send, True) - now)
            else:
                delay = min(result.retry_after, MAX_RETRY_AFTER)
        else:
            self._failures += 1
            backoff = min(opts.max_backoff, opts.initial_backoff * (2 ** min(self._failures - 1, 16)))
            delay = random.uniform(backoff / 2, backoff)  # jitter: clients do not retry in step
            if result.retry_after is not None:
                delay = max(delay, min(result.retry_after, MAX_RETRY_AFTER))
            if self.queued() >= self._size:
                # Nothing leaves while the backend is down: the backlog is
                # sealed in full batches, fewer requests once it is back.
                self._size = self._ceiling
        self._retry_at = now + delay
        if result.throttled:
            warn_once(
                f"throttled:{id(self)}",
                "dunetrace: the ingest API limits requests (HTTP 429); sending full batches at "
                "the allowed rate from now on (%s), events are kept",
                f"retry in {delay:.1f}s as asked"
                if result.retry_after is not None
                else f"{self._window.limit or 60} a minute, next in {delay:.1f}s",
            )
        elif (self._failures == 1 and now - self._last_retry_log > 30) or self._failures % 10 == 0:
            self._last_retry_log = now
            logger.warning(
                "dunetrace: delivery failed (%s); %d events kept, retry %d in %.1fs",
                result.reason or "retryable error",
                self.queued(),
                self._failures,
                delay,
            )

    def _report_drops(self) -> None:
        total = sum(self.dropped.values())
        if total > self._dropped_reported and time.monotonic() - self._last_report > 5:
            self._dropped_reported = total
            self._last_report = time.monotonic()
            logger.warning("dunetrace: %d events dropped so far: %s", total, dict(self.dropped))

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
