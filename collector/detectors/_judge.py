"""Judging one run at the collector: the core's detectors
(:class:`dunetrace.detectors.RunJudge`, the same code the SDK runs live) fed
the run's events in order, STEP_COUNT_INFLATION against the agent's earlier
runs, and the live signals the SDK sent.

A live signal (an ``external.signal`` with ``source`` ``"dunetrace"`` and
``live`` true) is kept as the run's signal of its type, marked ``live``; the
collector's own finding of the same type is not reported again.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dunetrace import log as dunetrace_log
from dunetrace.detectors import SEVERITIES, RunJudge
from dunetrace.live import SOURCE

from . import _registry, step_count_inflation
from ._run import RunView, read_run
from ._types import Signal
from .config import DetectorConfig

__all__ = ["judge_run", "judge_view", "live_signals_in_rows"]

_CALLED = frozenset({"tool.called", "llm.called", "retrieval.called"})
#: A response without its call is still an outcome: the call is made up
#: from the response (name only), as if its event had arrived.
_CALL_OF = {"tool.responded": "tool.called", "llm.responded": "llm.called"}
_LIMIT = 64


def judge_run(
    events: Iterable[dict[str, Any]],
    config: DetectorConfig | None = None,
    *,
    prior_step_counts: Sequence[int] = (),
) -> list[Signal]:
    """The signals for one run, in the order of the detector table (then
    live signals of other types, such as POLICY_TRIGGERED).

    ``events`` are all the wire events of one run, in any order;
    ``prior_step_counts`` the total steps of the agent's earlier judged runs
    (STEP_COUNT_INFLATION compares with them). Pure: no I/O, no clock.
    """
    return judge_view(read_run(events, prior_step_counts), config)


def _failed(what: str, run_id: str, exc: Exception) -> None:
    if dunetrace_log.strict:
        raise exc
    dunetrace_log.warn_once(
        f"internal:collector.detector.{what}:{type(exc).__name__}",
        "dunetrace collector: detector %s failed on run %s (skipped; please report): %r",
        what,
        run_id,
        exc,
        level=logging.ERROR,
    )


def judge_view(run: RunView, config: DetectorConfig | None = None) -> list[Signal]:
    """:func:`judge_run` for a run already read (the collector reads its
    stored rows with ``read_rows``)."""
    if not run.run_id:
        return []
    params = (config or DetectorConfig()).for_agent(run.agent_id)
    judge = RunJudge(params, run_id=run.run_id, agent_id=run.agent_id)
    on = judge.on
    live: dict[str, Signal] = {}
    # Delivery is at least once: a second event of one type at one step is
    # a resent copy (each call has its own step), and counting it would
    # invent a repeat.
    seen: set[tuple[str, int]] = set()
    called: set[int] = set()
    max_step = 0
    for step, _key, _position, ts, kind, payload in run.items:
        if step > max_step:
            max_step = step
        if kind == "external.signal" and payload.get("source") == SOURCE and payload.get("live") is True:
            signal = _live_signal(run, step, payload)
            if signal is not None and signal.detector not in live:
                live[signal.detector] = signal
            continue
        handler = on.get(kind)
        if handler is None:
            continue
        if kind in _CALLED:
            if step in called:
                continue
            called.add(step)
        elif kind != "external.signal":
            if (kind, step) in seen:
                continue
            seen.add((kind, step))
            call = _CALL_OF.get(kind)
            if call is not None and step not in called:
                called.add(step)
                name = payload.get("tool_name")
                on[call](step, {"tool_name": name} if kind == "tool.responded" else {}, ts)
        try:
            handler(step, payload, ts)
        except Exception as exc:  # one bad event costs its own updates, not the run
            _failed(kind, run.run_id, exc)
    if judge.terminal is None:
        judge.end()
    if judge.max_step > max_step:
        max_step = judge.max_step
    signals: list[Signal] = []
    for detector in _registry.DETECTORS:
        name = detector.name
        if name in live:
            signals.append(live.pop(name))
            continue
        if not params[name]["enabled"]:
            continue
        try:
            if name == "STEP_COUNT_INFLATION":
                found = step_count_inflation.detect(max_step, run.prior_step_counts, params[name])
                if found is None:
                    continue
                severity, step, evidence = found.severity or detector.severity, found.step_index, found.evidence
            elif name in judge.fired:
                finding = judge.finding(name)
                severity, step, evidence = finding.severity, finding.step_index, finding.evidence
            else:
                continue
            signals.append(Signal(name, severity, run.run_id, run.agent_id, step, evidence, detector.explain(evidence)))
        except Exception as exc:  # a detector's bug costs only its own signal
            _failed(name, run.run_id, exc)
    signals.extend(live.values())
    return signals


def _live_signal(run: RunView, step: int, payload: Mapping[str, Any]) -> Signal | None:
    """The collector's signal for a live ``external.signal`` from the SDK."""
    name = payload.get("signal_name")
    if not isinstance(name, str) or not name:
        return None
    name = name[:_LIMIT]
    severity = payload.get("severity")
    severity = severity.upper() if isinstance(severity, str) and severity.upper() in SEVERITIES else "MEDIUM"
    evidence = payload.get("evidence")
    evidence = dict(evidence) if isinstance(evidence, dict) else {}
    detector = _registry.by_name(name)
    explanation: dict[str, str] | None = None
    if detector is not None:
        name = detector.name
        try:
            explanation = detector.explain(evidence)
        except Exception:  # evidence from another SDK version: the plain words below
            explanation = None
    if explanation is None:
        explanation = {
            "what": f"The SDK reported {name} ({severity}) at step {step} while this run was going.",
            "why": "It was found in the agent's own process, from what the run did up to that step.",
            "try": "See the evidence for the details, and the run's timeline around that step.",
        }
    return Signal(name, severity, run.run_id, run.agent_id, step, evidence, explanation, live=True)


def live_signals_in_rows(run_id: str, rows: Iterable[Sequence[Any]]) -> list[Signal]:
    """The live signals among one run's stored rows (``schema.ROW_FIELDS``),
    for the store to show them as they arrive, before the run is judged."""
    found: list[Signal] = []
    for row in rows:
        if row[1] == "external.signal":
            payload = row[7]
            if isinstance(payload, dict) and payload.get("source") == SOURCE and payload.get("live") is True:
                signal = _live_signal(RunView(run_id, str(row[2])), row[4], payload)
                if signal is not None:
                    found.append(signal)
    return found
