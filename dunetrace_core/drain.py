"""The drain thread: queued events into batches, batches to the exporters.

One daemon thread per client (started by ``buffer.py``) wakes every
``flush_interval`` seconds, or as soon as ``max_batch_size`` events are
queued. Finding the oldest queued event younger than the interval, it
lingers until that event is due (``_linger``), so that events that come
together leave in one request; then it moves what is queued into per-agent
batches of up to ``max_batch_size`` in arrival order, sealing each full one
as its encoded request body. No event waits longer than the interval (plus
the request before it). It hands the oldest batch to the exporters, and
while that one is out, a :class:`~dunetrace.sender.Sender` may deliver the
oldest full batch of another agent beside it: a run belongs to one agent,
so this never reorders a run's events, and the receiver works on one
request while it reads or syncs the other. While delivery fails or is paced
(no lingering then), batches start at ``batch_size`` events; while a
backlog builds (events arrive faster than requests carry them) they double
up to ``max_batch_size``; after a 429 or a failure with a backlog they go
straight to the ceiling, and they shrink back once the backlog has cleared.
(With lingering off, a benchmark's baseline, a steady stream that fills a
batch in under half a flush interval grows them to what it brings in half
an interval.) Under a backlog the next batches are built while these are
out.

A batch to retry goes first once its retry is due (after a backoff with
jitter, or when ``ratelimit.py`` says the next request may go after a 429),
and no later batch of its agent goes before it. A batch the receiver refuses
in part is remade in its place (``rebatch.py``).

:class:`Draining` is this part of the buffer; its state is set up in
``Buffer._reset``.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from itertools import islice
from queue import SimpleQueue
from typing import TYPE_CHECKING, Any

from .encoding import encode_body
from .export import ExportBatch, ExportResult, combined
from .lifecycle import quiet_signals
from .log import capture_internal_errors, logger, warn_once
from .ratelimit import RequestWindow
from .rebatch import NO_LIMIT, PendingBatch, Reshaping
from .sender import Sender

if TYPE_CHECKING:
    from collections.abc import Callable

    from .plugins import PluginHost

__all__ = ["MAX_RETRY_AFTER", "Draining"]

#: Events moved from the queue into batches at a time (see ``_take``).
_CHUNK = 32

#: A run's terminal events (buffer.TERMINAL).
_ENDS = frozenset(("run.completed", "run.errored"))

#: Batches out at once (of as many agents), while the receiver is healthy.
_SLOTS = 2

#: The longest Retry-After obeyed, in seconds.
MAX_RETRY_AFTER = 600.0

#: A linger shorter than this drains now: a wake costs more than it saves.
_NOT_WORTH_A_WAKE = 0.002

#: The clock a run stamps its events with unless it was given another.
_wall_clock = time.time


class Draining(Reshaping):
    """The drain thread's side of the buffer (a base of ``Buffer``, which
    sets these attributes up)."""

    queue: deque[Any]
    batch_size: int
    wake: threading.Event
    _host: PluginHost
    _deploy_sender: Callable[[dict[str, Any]], None] | None
    _before_drain: Callable[[], None] | None
    _deploys: deque[dict[str, Any]]
    _progress: threading.Condition
    _out: dict[str, PendingBatch]
    _again: list[PendingBatch]
    _senders: list[Sender]
    _idle: list[Sender]
    _results: SimpleQueue[tuple[Sender | None, PendingBatch, ExportResult]]
    _stopping: bool
    _halted: bool
    _retry_at: float
    _failures: int
    _window: RequestWindow
    _paced_at: float
    _size: int
    wake_at: int
    _drained_at: float
    _left: int
    _last_send: float
    _last_retry_log: float
    _busy: bool
    #: Flushes waiting (``Buffer.flush``): the drain does not linger meanwhile.
    _flushing: int
    _lingers: bool = True
    _id_prefix: str
    _next_id: int
    sent: int
    batches_sent: int
    retries: int
    unconfirmed: int
    _dropped_reported: int
    _last_report: float

    def queued(self) -> int:
        raise NotImplementedError

    @property
    def linger(self) -> bool:
        """Whether the drain lingers for more events (see ``_linger``); a
        benchmark's baseline turns it off."""
        return self._lingers

    @linger.setter
    def linger(self, on: bool) -> None:
        self._lingers = on
        self._resize(self._size)

    def _run(self) -> None:
        quiet_signals()
        interval = self._options.flush_interval
        wait = interval
        while True:
            due = self._retry_at or self._paced_at
            if self._pending and due:
                wait = max(0.0, min(wait, due - time.monotonic()))
            self.wake.wait(wait)
            self.wake.clear()
            wait = self._linger(interval)
            if wait:
                continue
            wait = interval
            self._busy = True
            self._follow_stream(interval)
            if self._before_drain is not None:
                with capture_internal_errors("drain plugins"):
                    self._before_drain()
            with capture_internal_errors("drain"):
                self._drain()
            self._busy = False
            self._drained_at = time.monotonic()
            self._left = len(self.queue)
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
        if not paced and len(self.queue) + self._pending_events < self.batch_size:
            self._resize(self.batch_size)  # the backlog has cleared
        ahead = None if self._retry_at or paced else 2 * self._size
        self._take(ahead)
        out = self._out
        hold = False
        while True:
            self._dispatch(ahead, hold)
            if not out:
                # What arrived while the last batches were out waits for the
                # next tick, unless it already fills a batch: a fast receiver
                # must not turn into a stream of tiny requests.
                if self.queue and (len(self.queue) >= self._size or self._stopping) and not self._halted:
                    self._take(ahead)
                    continue
                break
            if ahead is not None:
                # Build the next batches while these are out, not after, a
                # chunk at a time: an answer waits for one chunk at most, and
                # sleep(0) lets the sender threads have the interpreter lock
                # between chunks (else they wait out the 5 ms switch interval).
                while len(self.queue) >= self._size and self._results.empty():
                    self._take(4 * _CHUNK)
                    time.sleep(0)
            sender, group, result = self._results.get()
            if sender is not None:
                self._idle.append(sender)
            # A stream (batches grown past the quiet size): what was taken
            # after the wake and has not filled a batch waits for the next
            # one, which comes within half an interval (_follow_stream),
            # rather than leaving now as a small request of its own.
            hold = ahead is not None and self._size > self.batch_size and not self._stopping
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

    def _linger(self, interval: float) -> float:
        """Seconds to wait for more events before draining, or 0.0 to drain
        now. Woken by the timer (or by a batch of ``max_batch_size``) while
        the oldest queued event is younger than ``flush_interval``, the
        drain lets the batch fill until that event is due: events that come
        together leave together, in batches of up to ``max_batch_size``,
        and no event waits longer than the interval. A flush, a deploy
        marker and the end drain at once, in batches as large; batches
        pending (a retry, a batch held open) and a 429's pacing drain at
        once at the size the retry logic set."""
        queue = self.queue
        if not self._lingers or not queue or self._pending or self._retry_at or self._window.until:
            return 0.0
        ceiling = self._ceiling
        if self._size < ceiling:
            self._resize(ceiling)  # what is queued leaves in as few requests as the contract allows
        if self._flushing or self._stopping or self._deploys or len(queue) >= ceiling:
            return 0.0
        item = queue[0]  # the oldest: only this thread takes from the queue
        if type(item) is tuple and item[0].clock is _wall_clock:
            # Queued with its time.time() stamp. A wall clock stepped back
            # (a stamp in the future) waits at most one interval from now.
            left = min(item[3] + interval - _wall_clock(), interval)
        else:
            # A run with a clock of its own (replayed spans): the oldest
            # event came after the last drain, or was left by it.
            left = self._drained_at + interval - time.monotonic()
        return left if left > _NOT_WORTH_A_WAKE else 0.0

    def _follow_stream(self, interval: float) -> None:
        """A batch filled in under half a flush interval: events arrive
        faster than requests at this size carry them, a steady stream rather
        than a trickle. Batches grow to what the stream brings in half an
        interval (up to ``max_batch_size``), so it takes fewer requests;
        Run._emit wakes the drain at that size, and the timer still sends
        whatever is queued every ``flush_interval``, so no event waits
        longer than it did. The batches shrink back with the backlog rule
        in ``_drain`` once the stream stops."""
        if self._retry_at or self._window.until or self._size >= self._ceiling:
            return  # failing or paced: the size is the retry logic's
        arrived = len(self.queue) - self._left
        elapsed = time.monotonic() - self._drained_at
        if arrived >= self._size and 0 < elapsed * 2 <= interval:
            self._resize(max(self._size * 2, int(arrived * interval / (2 * elapsed))))

    def _resize(self, size: int) -> None:
        """Batches of ``size`` events from now on (at most the ceiling), and
        a wake from the callers once that many are queued; while the drain
        lingers, once a batch of the ceiling is: until then the timer's wake
        finds the queue, and lingers, as an earlier wake would."""
        self._size = min(size, self._ceiling)
        self.wake_at = self._ceiling if self._lingers else self._size

    def _grow(self) -> None:
        """A request came back and a batch's worth or more still waits: a
        backlog, so bigger batches (fewer requests for the same events)."""
        if len(self.queue) >= self._size and self._size < self._ceiling:
            self._resize(self._size * 2)

    def _dispatch(self, ahead: int | None, hold: bool = False) -> None:
        """Hand out batches until two are out (one while retrying or paced,
        ``ahead`` None), or none may go yet; with ``hold``, only full ones."""
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
            group = self._next_out(ahead, hold=hold)
            if group is None:
                return
            self._last_send = now
            out[group.agent_id] = group
            if alone and (ahead is None or self._next_out(ahead, peek=True, hold=hold) is None):
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

    def _next_out(self, ahead: int | None, peek: bool = False, hold: bool = False) -> PendingBatch | None:
        """The next batch to hand out: one that failed and is due again; the
        head, sealed now if still open (unless ``hold``); or the first
        pending batch of an agent with none out, if it is full. (An agent's
        first pending batch that is still open may grow; a later one would
        overtake it.) With ``peek``, only whether there is one: nothing is
        taken or sealed."""
        out = self._out
        pending = self._pending
        if self._again:
            return self._again[0] if peek else self._again.pop(0)
        if not pending:
            return None
        head = pending[0]
        if head.agent_id not in out and (head.batch is not None or not hold):
            if peek:
                return head
            if head.batch is None and ahead is not None:
                # Still open: more of its agent's events may be queued behind
                # other agents'. Take a few chunks more, so it leaves full.
                for _ in range(4):
                    if head.batch is not None or not self.queue:
                        break
                    self._take(ahead)
            if head.batch is None:
                self._seal(head)
            return head
        seen = set(out)
        seen.add(head.agent_id)  # out, or held open: none of its later batches overtakes it
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
        left = len(self.queue) if limit is None else limit
        queue = self.queue
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
                    event_type = event["event_type"]
                    event["event_id"] = prefix + str(next_id)
                next_id += 1
                group = opened.get(agent)
                if group is not None and event_type in _ENDS and pending[-1] is not group:
                    # A run's end goes after the events of other agents that
                    # came before it (a child run's end before its parent's):
                    # the batch it would join goes out ahead of theirs, so
                    # the end starts a batch of its own behind them.
                    self._seal(group)
                    group = None
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
        return combined(self._host.hook.dunetrace_export(batch=batch), batch)

    def _schedule_retry(self, batch: ExportBatch, result: ExportResult) -> None:
        self.retries += 1
        opts = self._options
        now = time.monotonic()
        if result.throttled:
            # The ingest API allows 60 requests a minute per client (a sliding
            # window) and sends no Retry-After: from now on, batches of
            # max_batch_size leave as the window has room (ratelimit.py),
            # until a minute passes without a 429. A Retry-After says when.
            self._resize(self._ceiling)
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
                self._resize(self._ceiling)
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
