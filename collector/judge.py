"""Judging runs: once, when the terminal event is stored or when a run has
been silent for ``run_timeout`` seconds.

One daemon thread does it, so detectors never run on the event loop and a
slow alert never holds up an ingest request. Signals are stored with the
run's judgement in one transaction, then handed to the alert dispatcher.

The detectors are pure Python. With ``judge_worker`` (what ``dunetrace
serve`` does) they run in a process of their own (judge_worker.py), which
reads each run from the database (file or server), and a run is judged as
soon as it ends.

In this process, the judge keeps out of the ingest requests' way instead:
while the detectors run, the threads storing batches share the GIL with
them, which made each 202 wait. So a run is judged once ingest has been
quiet for ``judge_quiet`` seconds, or once it has waited ``judge_max_delay``
seconds, whichever is first; under a continuous stream of requests the
judge lags by that much and then keeps pace, sharing the CPU with the
stream.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import Settings
    from .store import Store

__all__ = ["IngestActivity", "Judge"]

logger = logging.getLogger("dunetrace.collector")

_STOP = object()

#: How many of an agent's latest judged runs STEP_COUNT_INFLATION looks at.
PRIOR_RUNS = 500


class IngestActivity:
    """Ingest requests in progress: the judge waits for ``idle``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self.last_end = 0.0
        self.idle = threading.Event()
        self.idle.set()

    def begin(self) -> None:
        with self._lock:
            self._active += 1
            self.idle.clear()

    def end(self) -> None:
        with self._lock:
            self._active -= 1
            self.last_end = time.monotonic()
            if self._active <= 0:
                self._active = 0
                self.idle.set()


class Judge:
    def __init__(
        self, store: Store, settings: Settings, dispatcher: Any = None, activity: IngestActivity | None = None
    ) -> None:
        from .detectors import Signal, load_config
        from .judge_worker import JudgeWorker, detect

        self.activity = activity or IngestActivity()
        self._detect = detect
        self._signal = Signal.from_dict
        # The worker process reads runs from the database (file or server).
        self._worker = JudgeWorker(settings.db_path, settings.detectors_path) if settings.judge_worker else None
        # The worker reads runs from the database: nothing to keep in memory.
        store.keep_rows = self._worker is None
        self._config = load_config(settings.detectors_path)
        self._store = store
        self._settings = settings
        self._dispatcher = dispatcher
        self._queue: queue.Queue[Any] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._idle = threading.Condition()
        self._busy = 0
        self._prior: dict[str, deque[int]] = {}
        self.judged = 0
        #: Where judged runs' signals also go as OpenTelemetry spans
        #: (judgement_spans.JudgementSpans), or None.
        self.spans: Any = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="dunetrace-judge", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)
            self._thread = None
        if self._worker is not None:
            self._worker.stop()

    def submit(self, run_ids: list[str]) -> None:
        """Runs whose terminal event was just stored."""
        with self._idle:
            self._busy += len(run_ids)
        deadline = time.monotonic() + self._settings.judge_max_delay
        for run_id in run_ids:
            self._queue.put((run_id, deadline))

    def wait_idle(self, timeout: float) -> bool:
        """Until every submitted run is judged (tests, the demo)."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._idle.wait(remaining)
        return True

    def _loop(self) -> None:
        interval = min(self._settings.sweep_interval, self._settings.run_timeout)
        next_sweep = time.monotonic()  # first sweep at start: runs left by a restart
        while True:
            try:
                items = [self._queue.get(timeout=max(0.0, next_sweep - time.monotonic()))]
            except queue.Empty:
                items = []
            # Under load several runs end per batch: judge what is queued
            # together and store it in one transaction.
            while items and len(items) < 200:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = _STOP in items
            queued = [item for item in items if item is not _STOP]
            if queued:
                deadlines = [deadline for _, deadline in queued]
                self._guarded([run_id for run_id, _ in queued], lambda i, d=deadlines: self._wait_for_pause(d[i]))
                with self._idle:
                    self._busy -= len(queued)
                    self._idle.notify_all()
            if stop:
                return
            if time.monotonic() >= next_sweep:
                next_sweep = time.monotonic() + interval
                try:
                    silent = self._store.runs_to_judge(time.time() - self._settings.run_timeout)
                except Exception:
                    logger.exception("dunetrace collector: could not look for silent runs")
                    silent = []
                deadline = time.monotonic() + self._settings.judge_max_delay
                for i in range(0, len(silent), 200):
                    self._guarded(silent[i : i + 200], lambda _, d=deadline: self._wait_for_pause(d))

    def _wait_for_pause(self, deadline: float) -> None:
        """Until no ingest request has been in progress for ``judge_quiet``
        seconds, or the deadline. A pause shorter than that is a client
        encoding its next batch: judging a run takes a few milliseconds,
        longer than such a pause, and would spill over into the next
        request."""
        quiet = self._settings.judge_quiet
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.activity.idle.wait(remaining):
                return
            since = time.monotonic() - self.activity.last_end
            if since >= quiet and self.activity.idle.is_set():
                return
            time.sleep(max(0.001, min(quiet - since, deadline - time.monotonic())))

    def _guarded(self, run_ids: list[str], pause: Callable[[int], None] | None = None) -> None:
        try:
            self.judge_many(run_ids, pause)
        except Exception:
            logger.exception("dunetrace collector: judging runs %s failed", run_ids[:5])

    def _send_spans(self, result: dict[str, list[Any]], steps: dict[str, tuple[str, int]]) -> None:
        for run_id, signals in result.items():
            if not any(not getattr(s, "live", False) for s in signals):
                continue
            try:
                self.spans.send(run_id, steps[run_id][0], signals, self._store.run_events(run_id))
            except Exception:
                logger.exception("dunetrace collector: the judgement span of run %s was not sent", run_id)

    def _prior_counts(self, agent_id: str, run_id: str) -> deque[int]:
        """Total steps of the agent's latest judged runs, newest first (what
        STEP_COUNT_INFLATION compares with): read from the file once per
        agent, then kept up to date as this judge judges its runs."""
        known = self._prior.get(agent_id)
        if known is None:
            known = deque(self._store.prior_step_counts(agent_id, run_id, PRIOR_RUNS), maxlen=PRIOR_RUNS)
            self._prior[agent_id] = known
        return known

    def judge(self, run_id: str) -> list[Any]:
        """Run the detectors over one run and store what they found."""
        return self.judge_many([run_id]).get(run_id, [])

    def judge_many(self, run_ids: list[str], pause: Callable[[int], None] | None = None) -> dict[str, list[Any]]:
        """Judge runs and store the judgements in one transaction. When the
        detectors run in this process, ``pause(i)`` is called before the
        i-th run is read and judged."""
        # Several collector processes may share a PostgreSQL store: judge
        # only the runs this one holds (SQLite: all of them).
        claimed = set(self._store.claim_runs(run_ids))
        found: dict[str, list[Any]] = {}
        steps: dict[str, tuple[str, int]] = {}
        elsewhere: dict[str, list[int]] = {}  # for the worker process
        worker = self._worker if self._worker is not None and not self._worker.broken else None
        for i, run_id in enumerate(run_ids):
            if run_id in steps or run_id not in claimed:
                continue
            if pause is not None and worker is None:
                pause(i)
            run = self._store.run(run_id)
            if run is None or run["status"] == "judged":
                continue
            steps[run_id] = (run["agent_id"], run["total_steps"])
            prior = self._prior_counts(run["agent_id"], run_id)
            if worker is None:
                found[run_id] = self._detect(run_id, self._store.take_rows(run_id), prior, self._config)
            else:
                elsewhere[run_id] = list(prior)
        if worker is not None and elsewhere:
            judged = worker.judge(list(elsewhere.items()))
            for run_id, prior in elsewhere.items():
                if judged is None:  # the worker is gone: here, from the file
                    found[run_id] = self._detect(run_id, self._store.run_rows(run_id), prior, self._config)
                else:
                    found[run_id] = [self._signal(signal) for signal in judged.get(run_id, ())]
        if not found:
            return {}
        # With the store as the dispatcher's outbox, a run's alerts are queued
        # in its judgement's transaction: stored once, with the judgement, and
        # kept across a restart.
        durable = self._dispatcher is not None and getattr(self._dispatcher, "outbox", None) is self._store
        queued = [0]

        def alerts(signals: list[dict[str, Any]]) -> list[Any]:
            rows = self._dispatcher.rows_for(signals)
            queued[0] += len(rows)
            return rows

        judged = [(r, [s.to_dict() for s in signals]) for r, signals in found.items()]
        saved = self._store.save_judgements(judged, alerts) if durable else self._store.save_judgements(judged)
        for run_id in saved:
            agent_id, total = steps[run_id]
            known = self._prior.get(agent_id)
            if known is not None:
                known.appendleft(total)
        self.judged += len(saved)
        result = {run_id: found[run_id] for run_id in saved}
        if self.spans is not None:
            self._send_spans(result, steps)
        if durable:
            self._dispatcher.added(queued[0])
        elif self._dispatcher is not None:
            for run_id, signals in result.items():
                for signal in signals:
                    try:
                        self._dispatcher.submit(signal)
                    except Exception:
                        logger.exception("dunetrace collector: alert for run %s not queued", run_id)
        return result
