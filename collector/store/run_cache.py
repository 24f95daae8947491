"""The events of runs not yet judged, kept in memory by the process that
stored them, so that judging a run this process saw whole reads nothing back
from the file. Bounded by ``cache_limit`` events: the oldest runs are let go
first, and the judge reads those back. Part of ``SQLiteStore``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from .common import Row, translate_errors

__all__ = ["RunCache"]


@translate_errors
class RunCache:
    """The in-memory rows of a store's runs not yet judged. ``take_rows``
    falls back to the store's ``run_rows`` for a run it does not hold."""

    #: The store's read of a run from the file (reads.py).
    run_rows: Callable[[str], list[Row]]

    def _init_cache(self) -> None:
        #: Events kept in memory for runs not yet judged, at most (about
        #: 600 bytes each). Under a steady stream the judge lags by up to
        #: ``judge_max_delay``: at 50k events/s that is 50k events, which
        #: should be judged from here, not read back from the file.
        self.cache_limit = 100_000
        #: False when runs are judged in another process, which reads them
        #: from the file: then nothing is kept here.
        self.keep_rows = True
        self._cache: dict[str, list[Row]] = {}
        self._cached = 0
        self._cache_lock = threading.Lock()
        #: Runs evicted from the cache, not yet freed (see release_evicted).
        self._evicted: list[list[Row]] = []

    def _remember(self, by_run: dict[str, list[Row]], known: dict[str, str], exact: bool) -> None:
        """Keep the rows of runs this process saw from their first event,
        so judging them needs no reading back. Called under the write lock,
        after the commit."""
        with self._cache_lock:
            # Freed here at the latest, so at most one batch's evictions wait.
            self._evicted = []
            cache = self._cache
            for run_id, new in by_run.items():
                if not exact:  # which of them were re-sent copies is not known here
                    self._cached -= len(cache.pop(run_id, ()))
                elif run_id not in known:
                    cache[run_id] = new
                    self._cached += len(new)
                elif run_id in cache:
                    cache[run_id].extend(new)
                    self._cached += len(new)
            while self._cached > self.cache_limit and cache:
                oldest = next(iter(cache))  # the judge reads evicted runs back from the file
                evicted = cache.pop(oldest)
                self._cached -= len(evicted)
                # Freeing a run's events (hundreds of rows) takes a while;
                # the ingest API does it after its answer is sent.
                self._evicted.append(evicted)

    def release_evicted(self) -> None:
        """Free the events evicted by the last batch (the ingest API calls
        it once its 202 is sent, off the client's wait)."""
        with self._cache_lock:
            evicted, self._evicted = self._evicted, []
        del evicted

    def take_rows(self, run_id: str) -> list[Row]:
        """A run's events as rows, in arrival order, for judging it: from
        memory when this process saw the whole run, else from the file."""
        with self._cache_lock:
            cached = self._cache.pop(run_id, None)
            if cached is not None:
                self._cached -= len(cached)
                return cached
        return self.run_rows(run_id)

    def _forget(self, run_ids: list[str]) -> None:
        """Let go of the rows of runs just judged."""
        with self._cache_lock:
            for run_id in run_ids:
                self._cached -= len(self._cache.pop(run_id, ()))
