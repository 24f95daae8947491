"""Judging one run: every enabled detector over the run's events."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from dunetrace import log as dunetrace_log

from ._registry import DETECTORS
from ._run import RunView, read_run
from ._types import Signal
from .config import DetectorConfig

__all__ = ["judge_run", "judge_view"]


def judge_run(
    events: Iterable[dict[str, Any]],
    config: DetectorConfig | None = None,
    *,
    prior_step_counts: Sequence[int] = (),
) -> list[Signal]:
    """The signals for one run, in the order of the detector table.

    ``events`` are all the wire events of one run, in any order;
    ``prior_step_counts`` the total steps of the agent's earlier judged runs
    (STEP_COUNT_INFLATION compares with them). Pure: no I/O, no clock.
    """
    return judge_view(read_run(events, prior_step_counts), config)


def judge_view(run: RunView, config: DetectorConfig | None = None) -> list[Signal]:
    """:func:`judge_run` for a run already read (the collector reads its
    stored rows with ``read_rows``)."""
    if not run.run_id:
        return []
    settings = (config or DetectorConfig()).for_agent(run.agent_id)
    signals: list[Signal] = []
    for detector in DETECTORS:
        params = settings[detector.name]
        if not params["enabled"]:
            continue
        # A detector's bug must not cost the run its other signals. The same
        # rule as dunetrace.log.capture_internal_errors, inline: this loop runs
        # for every run the collector judges, and a context manager per
        # detector costs more than the detectors themselves.
        try:
            finding = detector.detect(run, params)
            if finding is None:
                continue
            signal = Signal(
                detector=detector.name,
                severity=finding.severity or detector.severity,
                run_id=run.run_id,
                agent_id=run.agent_id,
                step_index=finding.step_index,
                evidence=finding.evidence,
                explanation=detector.explain(finding.evidence),
            )
        except Exception as exc:
            if dunetrace_log.strict:
                raise
            dunetrace_log.warn_once(
                f"internal:collector.detector.{detector.name}:{type(exc).__name__}",
                "dunetrace collector: detector %s failed on run %s (its signal is skipped; please report): %r",
                detector.name,
                run.run_id,
                exc,
                level=logging.ERROR,
            )
            continue
        signals.append(signal)
    return signals
