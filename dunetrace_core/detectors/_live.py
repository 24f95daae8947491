"""The live watcher: the detector library run on each event of every run of
a client, in the agent's process, on the thread that emitted the event.

It keeps one :class:`RunJudge` per open run (dropped at the run's terminal
event) and, when a detector fires, hands ``run.fire`` a
:class:`dunetrace.live.Signal`: once per run and type, in the callback
``Dunetrace(on_signal=...)`` and as an ``external.signal`` event.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from ..live import Signal
from ._judge import HANDLERS, RunJudge
from ._settings import DetectorSettings
from ._table import by_name

if TYPE_CHECKING:
    from ..run import Run

__all__ = ["LiveDetectors", "live_detectors"]

#: Open runs kept at most; past it the oldest run's state is dropped (a run
#: that never reports its end must not grow memory without bound).
MAX_OPEN_RUNS = 10_000
#: How far up the chain of parent runs DELEGATION_LOOP looks.
MAX_DEPTH = 50
#: The events after which a run's state goes.
_TERMINAL = frozenset(("run.completed", "run.errored"))


class LiveDetectors:
    """A watcher (:mod:`dunetrace.live`) running every enabled live detector."""

    def __init__(self, settings: DetectorSettings | None = None) -> None:
        self.settings = settings or DetectorSettings()
        self._judges: dict[Run, RunJudge] = {}
        #: run_id -> (agent_id, parent_run_id) of open runs, for the chain
        #: of runs that started one (DELEGATION_LOOP).
        self._open: dict[str, tuple[str, str | None]] = {}

    def observe(self, run: Run, event_type: str, step: int, payload: dict[str, Any]) -> None:
        # The agent's time: one lookup for the run, one for the event type.
        judge = self._judges.get(run)
        if judge is None:
            if run.finished and event_type != "run.completed" and event_type != "run.errored":
                return  # an event after the run ended (a late signal): nothing to judge
            judge = self._start(run)
        handler = HANDLERS.get(event_type)
        if handler is None:
            return
        if event_type in _TERMINAL:
            self._ended(run, judge, handler, step, payload)
            return
        handler(judge, step, payload, None)
        # Run._emit calls watchers once the event is queued (a run's end
        # excepted), so what run.started makes fire (an injected input)
        # goes out right behind it.
        if judge.new:
            self._fire(run, judge)

    def _start(self, run: Run) -> RunJudge:
        ancestors: list[str] = []
        parent = run.parent_run_id
        while parent is not None and len(ancestors) < MAX_DEPTH:
            known = self._open.get(parent)
            if known is None:
                break
            ancestors.append(known[0])
            parent = known[1]
        judge = RunJudge(
            self.settings.for_agent(run.agent_id),
            run_id=run.run_id,
            agent_id=run.agent_id,
            clock=run.clock,
            ancestors=ancestors,
        )
        if len(self._judges) >= MAX_OPEN_RUNS:
            oldest = next(iter(self._judges))
            self._judges.pop(oldest, None)
            self._open.pop(oldest.run_id, None)
        self._judges[run] = judge
        self._open[run.run_id] = (run.agent_id, run.parent_run_id)
        return judge

    def _ended(self, run: Run, judge: RunJudge, handler: Any, step: int, payload: dict[str, Any]) -> None:
        # The run's state goes when its terminal event has been judged.
        try:
            handler(judge, step, payload, None)
            if judge.new:
                self._fire(run, judge)
        finally:  # a PolicyViolation from a callback passes through here
            self._judges.pop(run, None)
            self._open.pop(run.run_id, None)

    def _fire(self, run: Run, judge: RunJudge) -> None:
        names, judge.new = judge.new, []
        passing: BaseException | None = None
        for name in names:
            found = judge.finding(name)
            info = by_name(name)
            signal = Signal(
                found.detector,
                found.severity,
                info.confidence if info is not None else 0.9,
                judge.fired[name],
                found.evidence,
                run=run,
            )
            try:
                run.fire(signal)
            except Exception as exc:  # only what run.fire lets through (PolicyViolation)
                passing = passing or exc
        if passing is not None:  # every signal of the event is out first
            raise passing

    @property
    def open_runs(self) -> int:
        """Runs whose state is kept (started and not ended)."""
        return len(self._judges)


#: ``DUNETRACE_LIVE_DETECTORS`` values that turn live detection off by default.
_OFF_VALUES = frozenset({"0", "off", "false", "no"})


def live_detectors(option: Any) -> LiveDetectors | None:
    """The watcher for ``Dunetrace(detectors=...)``: None (the default) is
    on unless ``DUNETRACE_LIVE_DETECTORS`` is ``off``; True is on with the
    built-in thresholds; False is off; a dict in the ``detectors.yml`` form
    or a :class:`DetectorSettings` tunes them."""
    if option is None:
        if os.environ.get("DUNETRACE_LIVE_DETECTORS", "").strip().lower() in _OFF_VALUES:
            return None
        return LiveDetectors()
    if option is True:
        return LiveDetectors()
    if option is False:
        return None
    if isinstance(option, DetectorSettings):
        return LiveDetectors(option)
    if isinstance(option, dict):
        return LiveDetectors(DetectorSettings.from_mapping(option, source="Dunetrace(detectors=...)"))
    raise TypeError(
        "Dunetrace(detectors=...) takes True, False, or a dict in the detectors.yml form "
        f"({{'default': {{'tool_loop': {{'threshold': 4}}}}}}); got {option!r}"
    )
