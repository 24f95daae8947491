"""Puts CrewAI events back in the order they were emitted. Imports no
framework.

CrewAI 1.15 runs sync event handlers on a 10-thread pool, so a handler sees
events out of order. Each event carries ``emission_sequence``, numbered from
1 at every top-level kickoff (contexts copied for the agent executor's flow
steps and for ``async_execution`` tasks share the counter), and
``previous_event_id``, the event emitted just before it in its context.

A *stream* is one counter: it starts at an event with no predecessor (a
kickoff resets both), and every other event joins the stream of its
predecessor (or of its parent scope). Within a stream, events are released
strictly by ``emission_sequence``: the listener subscribes to every event
class, so every number arrives. A number can still be missing for good (a
class defined after the listener was installed, a crew resumed from a
checkpoint, an event emitted before installation): a wait ends after
``grace`` seconds, and what waited is released in sequence order. The pool
takes work in submission order, so an event still missing is one whose
handler has not run yet, and the grace only has to cover a busy pool.

The pool threads only queue (:meth:`Sequencer.push`); events are admitted
and released, one thread at a time, by :meth:`Sequencer.admit`, which the
Dunetrace drain thread calls at every wake, or by a pool thread once
``defer`` events wait.

Memory is bounded: the queue by ``defer`` events, streams and the ids used to
find them by LRU maps of ``remember`` entries.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Any

from dunetrace.log import capture_internal_errors

__all__ = ["Sequencer"]

_clock = time.monotonic


class _Stream:
    __slots__ = ("expected", "held")

    def __init__(self, expected: int) -> None:
        self.expected = expected
        #: (sequence, tiebreak, event, source, held since)
        self.held: list[tuple[int, int, Any, Any, float]] = []


def _seq(event: Any) -> int | None:
    seq = getattr(event, "emission_sequence", None)
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


class Sequencer:
    """``push(event, source)`` from any thread; ``deliver(event, source)`` is
    called in emission order, one call at a time."""

    def __init__(
        self,
        deliver: Callable[[Any, Any], None],
        *,
        grace: float = 0.5,
        remember: int = 20_000,
        defer: int = 256,
    ) -> None:
        self._deliver = deliver
        self.grace = grace
        #: events queued before a pool thread admits them itself (the bound
        #: on what waits for the drain thread)
        self.defer = defer
        self._remember = remember
        self._lock = threading.Lock()
        self._tiebreak = itertools.count()
        #: event id -> its stream (LRU)
        self._stream_of: OrderedDict[str, _Stream] = OrderedDict()
        #: predecessor id -> events waiting to learn their stream
        self._orphans: dict[str, list[tuple[Any, Any, float]]] = {}
        #: events queued, not yet admitted (any thread appends, the lock holder admits)
        self._queued: deque[tuple[Any, Any]] = deque()
        #: streams holding events back (waiting for a number)
        self._stuck: set[_Stream] = set()
        self._timer: threading.Timer | None = None
        #: events released past a gap that never filled
        self.forced = 0

    # -- entry points -------------------------------------------------------------

    def push(self, event: Any, source: Any = None) -> None:
        """From CrewAI's pool threads: queue the event and return. What is
        queued is admitted by :meth:`admit` (the Dunetrace drain thread calls
        it at every wake) or, once ``defer`` events wait, by the pool thread
        that finds the lock free; the others still only queue, so ten pool
        threads never take turns on the lock (and the GIL) per event."""
        queued = self._queued
        queued.append((event, source))
        if len(queued) >= self.defer:
            self.admit(wait=False)

    def admit(self, wait: bool = True) -> None:
        """Admit everything queued (``wait=False``: unless another thread is
        admitting already)."""
        lock = self._lock
        # Re-checked after each release: an event queued while the lock was
        # held (its thread found it taken) is admitted by the holder's loop.
        while self._queued:
            if not lock.acquire(blocking=wait):
                return
            try:
                with capture_internal_errors("crewai.sequence"):
                    self._admit_queued()
            finally:
                lock.release()

    def push_inline(self, event: Any, source: Any = None) -> None:
        """For events CrewAI dispatches inline on the emitting thread (stream
        chunks): queued, never admitted here, so the agent's thread never
        waits on the lock. The chunk is queued before any later event is even
        emitted."""
        self._queued.append((event, source))

    def waiting(self) -> int:
        with self._lock:
            return sum(len(s.held) for s in self._stuck) + sum(len(v) for v in self._orphans.values())

    def flush(self) -> None:
        """Release everything still waiting, in sequence order per stream."""
        with capture_internal_errors("crewai.sequence.flush"), self._lock:
            self._admit_queued()
            self._expire(force=True)

    def close(self) -> None:
        self.flush()
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    # -- under the lock -----------------------------------------------------------

    def _admit_queued(self) -> None:
        queued = self._queued
        now = _clock()
        while queued:
            event, source = queued.popleft()
            self._admit(event, source, now)

    def _find_stream(self, event: Any) -> tuple[_Stream | None, str | None]:
        """The stream of the event's predecessor or parent scope; else the id
        to wait for (None: the event starts a stream)."""
        previous = getattr(event, "previous_event_id", None)
        parent = getattr(event, "parent_event_id", None)
        for link in (previous, parent):
            if isinstance(link, str):
                stream = self._stream_of.get(link)
                if stream is not None:
                    return stream, None
        if isinstance(previous, str):
            return None, previous
        if isinstance(parent, str):
            return None, parent
        return None, None

    def _admit(self, event: Any, source: Any, since: float) -> None:
        seq = _seq(event)
        if seq is None:  # not a CrewAI event as we know them: nothing to order by
            self._deliver(event, source)
            return
        stream, wait_for = self._find_stream(event)
        if stream is None:
            if wait_for is not None:
                self._orphans.setdefault(wait_for, []).append((event, source, since))
                self._arm()
                return
            stream = _Stream(seq)  # a new kickoff (or an event with no links)
        self._join(stream, event, source, seq, since)

    def _join(self, stream: _Stream, event: Any, source: Any, seq: int, since: float) -> None:
        event_id = getattr(event, "event_id", None)
        if isinstance(event_id, str):
            self._stream_of[event_id] = stream
            self._stream_of.move_to_end(event_id)
            if len(self._stream_of) > self._remember:
                self._stream_of.popitem(last=False)
            # Events that waited to learn their stream join it now.
            for orphan, orphan_source, orphan_since in self._orphans.pop(event_id, ()):
                orphan_seq = _seq(orphan)
                if orphan_seq is not None:
                    self._join(stream, orphan, orphan_source, orphan_seq, orphan_since)
        if seq < stream.expected:  # a number already passed (a gap was given up on)
            self._deliver(event, source)
            return
        heapq.heappush(stream.held, (seq, next(self._tiebreak), event, source, since))
        self._drain(stream)

    def _drain(self, stream: _Stream) -> None:
        held = stream.held
        while held and held[0][0] <= stream.expected:
            seq, _, event, source, _ = heapq.heappop(held)
            stream.expected = max(stream.expected, seq + 1)
            self._deliver(event, source)
        if held:
            self._stuck.add(stream)
            self._arm()
        else:
            self._stuck.discard(stream)

    def _expire(self, force: bool = False) -> None:
        deadline = _clock() - self.grace
        # Orphans whose predecessor never came start streams of their own
        # (only chain heads: an orphan waiting on another orphan follows it).
        orphan_ids = {getattr(i[0], "event_id", None) for items in self._orphans.values() for i in items}
        heads = [
            key
            for key, items in self._orphans.items()
            if key not in orphan_ids and (force or min(i[2] for i in items) <= deadline)
        ]
        if force and self._orphans and not heads:  # links that loop: give up on all
            heads = list(self._orphans)
        for key in heads:
            items = sorted(self._orphans.pop(key, ()), key=lambda i: _seq(i[0]) or 0)
            if not items:
                continue
            stream = _Stream(_seq(items[0][0]) or 0)
            self.forced += len(items)
            for event, source, since in items:
                self._join(stream, event, source, _seq(event) or 0, since)
        if force and self._orphans:
            self._expire(force=True)
            return
        # Streams stuck on a missing number skip past it.
        for stream in list(self._stuck):
            if force or min(item[4] for item in stream.held) <= deadline:
                self.forced += 1
                stream.expected = stream.held[0][0]
                self._drain(stream)
                while force and stream.held:
                    stream.expected = stream.held[0][0]
                    self._drain(stream)

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = threading.Timer(self.grace, self._on_timer)
            self._timer.daemon = True
            self._timer.start()

    def _on_timer(self) -> None:
        with capture_internal_errors("crewai.sequence.timer"), self._lock:
            self._timer = None
            self._admit_queued()
            self._expire()
            if self._orphans or self._stuck:
                self._arm()
