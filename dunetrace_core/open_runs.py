"""The bounded table of open runs that every integration keeps.

A framework tells us a run started and, usually, that it ended. When the end
never comes (a dropped task, an abandoned stream, a crew that never reports
its kickoff end) the run's state must not stay in memory forever. Each
integration keys its open runs by the framework's own id in an
:class:`OpenRuns`: insertion-ordered, bounded by count and optionally by age.
Adding past a bound evicts the oldest entries and hands them back; the
integration ends them as ``abandoned`` (:data:`dunetrace.exit_reasons.ABANDONED`)
after ``add`` returns, outside this table's lock, since ending a run calls
hooks and queues events.

Lookups (``get``, ``in``, ``len``) take no lock: an integration does one per
framework callback, and a single dict operation is atomic. Changes take the
table's lock, so two threads never evict the same entry.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar, overload

__all__ = ["OpenRuns"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
D = TypeVar("D")

_MISSING = object()


class OpenRuns(Generic[K, V]):
    """Open runs by the framework's id, oldest first, at most ``max_runs``.

    ``max_age`` (seconds, optional) also evicts a run open longer than that,
    checked whenever a run is added and by :meth:`expire`. ``clock`` (a
    monotonic clock by default) is what ages are read from.

    The entry being added is never evicted by its own ``add``: a table with
    ``max_runs=1`` holds the newest run.
    """

    __slots__ = ("_born", "_clock", "_entries", "_lock", "evictions", "expirations", "max_age", "max_runs")

    def __init__(
        self, max_runs: int, *, max_age: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if isinstance(max_runs, bool) or not isinstance(max_runs, int) or max_runs < 1:
            raise ValueError(f"OpenRuns: max_runs must be a whole number of at least 1, not {max_runs!r}")
        if max_age is not None and (
            isinstance(max_age, bool)
            or not isinstance(max_age, (int, float))
            or not math.isfinite(max_age)
            or max_age <= 0
        ):
            raise ValueError(f"OpenRuns: max_age must be a positive number of seconds or None, not {max_age!r}")
        self.max_runs = max_runs
        self.max_age = max_age
        self._clock = clock
        self._entries: dict[K, V] = {}  # insertion order is age order
        # When each entry was added; kept only when there is an age bound.
        self._born: dict[K, float] = {}
        self._lock = threading.Lock()
        #: Runs evicted because more than ``max_runs`` were open.
        self.evictions = 0
        #: Runs evicted because they were open longer than ``max_age``.
        self.expirations = 0

    # -- lookups, lock-free -------------------------------------------------

    @overload
    def get(self, key: K) -> V | None: ...
    @overload
    def get(self, key: K, default: D) -> V | D: ...
    def get(self, key: K, default: object = None) -> object:
        """The open run under ``key``, or ``default``."""
        return self._entries.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def values(self) -> list[V]:
        """A snapshot of the open runs, oldest first."""
        with self._lock:
            return list(self._entries.values())

    # -- changes -------------------------------------------------------------

    def add(self, key: K, value: V) -> list[V]:
        """Open ``value`` under ``key`` as the newest run; returns the runs
        this evicted, oldest first, for the caller to end as abandoned.

        A different value already under ``key`` is evicted too (counted in
        ``evictions``): it would otherwise be lost without ever ending.
        Adding the same value again only makes it the newest.
        """
        evicted: list[V] = []
        with self._lock:
            previous = self._entries.pop(key, _MISSING)
            if previous is not _MISSING and previous is not value:
                evicted.append(previous)  # type: ignore[arg-type]
                self.evictions += 1
            # Room is made before the entry goes in: ``len`` is read without
            # the lock, and must never see more than ``max_runs``.
            now = 0.0
            if self.max_age is not None:
                now = self._clock()
                self._born.pop(key, None)
                self._expire(now - self.max_age, evicted)
            while len(self._entries) >= self.max_runs:
                oldest = next(iter(self._entries))
                evicted.append(self._entries.pop(oldest))
                self._born.pop(oldest, None)
                self.evictions += 1
            self._entries[key] = value
            if self.max_age is not None:
                self._born[key] = now
        return evicted

    def pop(self, key: K, value: V | None = None) -> V | None:
        """Forget the run under ``key`` (it ended) and return it, or None.

        With ``value``, only when ``key`` still holds that very run: a late
        end of an evicted run must not forget a newer run under the same key.
        """
        with self._lock:
            current = self._entries.get(key, _MISSING)
            if current is _MISSING or (value is not None and current is not value):
                return None
            del self._entries[key]
            self._born.pop(key, None)
            return current  # type: ignore[return-value]

    def expire(self) -> list[V]:
        """Evict the runs open longer than ``max_age``; returns them, oldest
        first (none without an age bound)."""
        evicted: list[V] = []
        if self.max_age is None:
            return evicted
        with self._lock:
            self._expire(self._clock() - self.max_age, evicted)
        return evicted

    def drain(self) -> list[V]:
        """Forget every open run and return them, oldest first (shutdown:
        the caller ends them as abandoned). Not counted as evictions."""
        with self._lock:
            left = list(self._entries.values())
            self._entries.clear()
            self._born.clear()
        return left

    def _expire(self, deadline: float, evicted: list[V]) -> None:
        # Under the lock. Insertion order is age order (a re-added key moves
        # to the end with a new birth), so the sweep stops at the first entry
        # young enough.
        born = self._born
        while born:
            oldest = next(iter(born))
            if born[oldest] > deadline:
                break
            evicted.append(self._entries.pop(oldest))
            del born[oldest]
            self.expirations += 1
