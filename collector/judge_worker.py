"""Running the detectors in a process of their own (``dunetrace serve``).

The detectors are pure Python. In the collector's own process they take the
interpreter lock from the threads that parse and store batches: under a
steady stream, judging was about 40% of that process's time. A worker
process reads each run's events from the database (SQLite's WAL or
PostgreSQL: committed batches are there to read) and judges it on another
core; the collector's
judge thread still decides when a run is judged, stores the judgement and
sends the alerts.

When the worker cannot be started or dies, the judge thread judges in its
own process again (one warning says so).

The worker exits when the collector's process ends, however it ends: a
thread of the worker waits on the sentinel multiprocessing gives each
spawned child (a pipe the parent holds open; it closes when the parent is
gone, kill -9 included) and then ends the process. Runs it was judging
are still ``ended`` in the file, and the next collector's first sweep
judges them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

__all__ = ["JudgeWorker", "detect"]

logger = logging.getLogger("dunetrace.collector")

#: The worker process's state: its connection to the file and the detector
#: configuration, set by ``_start`` when the process starts.
_db: Any = None
_config: Any = None


def _exit_with_parent() -> None:
    """In the worker: end this process once the collector's has ended."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()  # returns when the parent's end of the sentinel pipe closes
    else:  # not started by multiprocessing: watch for being re-parented
        first = os.getppid()
        while os.getppid() == first:
            time.sleep(0.5)
    # os._exit: the pool's own threads wait on the (dead) parent's queues
    # and would keep an orderly exit waiting for ever.
    os._exit(0)


def _start(db_path: str, detectors_path: str | None, log_setup: tuple[str, str] | None = None) -> None:
    global _db, _config
    from .detectors import load_config
    from .store import connect_reader

    threading.Thread(target=_exit_with_parent, name="dunetrace-parent-watch", daemon=True).start()
    if log_setup is not None:
        from .logs import configure

        configure(*log_setup)

    _db = connect_reader(db_path)  # a SQLite file, or a PostgreSQL URL
    _config = load_config(detectors_path)


def detect(run_id: str, rows: Any, prior: Sequence[int], config: Any) -> list[Any]:
    """The detectors over one run's stored rows: its signals. Run in the
    worker, or by the judge thread when there is none."""
    from .detectors import judge_view, read_rows

    try:
        return judge_view(read_rows(run_id, rows, prior), config)
    except Exception:
        # A detector bug must not leave the run to be retried forever.
        logger.exception("dunetrace collector: detectors failed on run %s; judged with no signals", run_id)
        return []


def _judge(runs: list[tuple[str, list[int]]]) -> dict[str, list[dict[str, Any]]]:
    """In the worker: the signals, as dicts, of each (run id, the agent's
    prior step counts)."""
    from .store import stored_rows

    assert _db is not None
    return {
        run_id: [signal.to_dict() for signal in detect(run_id, stored_rows(_db, run_id), prior, _config)]
        for run_id, prior in runs
    }


class JudgeWorker:
    """One worker process, started at the first use."""

    def __init__(self, db_path: str, detectors_path: str | None) -> None:
        from .logs import current

        # The worker logs as the collector does (``dunetrace serve``'s
        # --log-level and --log-format).
        self._args = (db_path, detectors_path, current())
        self._pool: ProcessPoolExecutor | None = None
        self.broken = False

    def judge(self, runs: list[tuple[str, list[int]]]) -> dict[str, list[dict[str, Any]]] | None:
        """The signals of each run, or None when the worker is not there
        (the caller judges them itself)."""
        if self.broken:
            return None
        try:
            if self._pool is None:
                # spawn: a fork of this process would copy its threads' locks.
                context = multiprocessing.get_context("spawn")
                self._pool = ProcessPoolExecutor(1, mp_context=context, initializer=_start, initargs=self._args)
            return self._pool.submit(_judge, runs).result()
        except Exception as exc:  # BrokenProcessPool, or the process cannot start
            self.broken = True
            logger.warning(
                "dunetrace collector: the judge process failed (%r); runs are judged in this process from now on",
                exc,
            )
            self.stop()
            return None

    def stop(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
