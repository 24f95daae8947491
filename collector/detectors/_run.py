"""One run's events, read into the order the detectors are fed them.

The collector hands :func:`judge_run` the wire dicts of one run in arrival
order, or its stored rows. Both are read into the same items, sorted by
step, then time, then arrival: the order the SDK emitted them in (each call
has its own step, its response the same step). The detectors themselves are
the core's (:mod:`dunetrace.detectors`), fed one item at a time.

A value of the wrong type (a step that is not a number, a payload that is
not an object) is read as missing, never guessed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from dunetrace.detectors import ANSWERED_EXIT_REASONS

__all__ = ["ANSWERED_EXIT_REASONS", "RunView", "capped", "plural", "read_rows", "read_run"]

#: (step, time as a sort key, arrival position, time, event_type, payload)
Item = tuple[int, float, int, "float | None", Any, dict[str, Any]]


def _int(value: Any) -> int | None:
    kind = type(value)  # exact types: bool is not a count
    if kind is int:
        return value if value >= 0 else None
    if kind is float and math.isfinite(value) and value >= 0:
        return int(value)
    return None


def _float(value: Any) -> float | None:
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is int:
        return float(value)
    return None


@dataclass
class RunView:
    """One run's events in feeding order, with what the collector knows
    besides them (the agent's earlier step counts)."""

    run_id: str
    agent_id: str
    items: list[Item] = field(default_factory=list)
    prior_step_counts: Sequence[int] = ()


def read_run(events: Iterable[dict[str, Any]], prior_step_counts: Sequence[int] = ()) -> RunView:
    """Read one run's wire events (any order) into a :class:`RunView`.

    Wire dicts may come from anywhere (tests, a hand-written file): a step
    or a time of the wrong type is read as 0, a payload that is not an
    object as an empty one."""
    items: list[Item] = []
    given: dict[int, dict[str, Any]] = {}
    for position, event in enumerate(events):
        if isinstance(event, dict):
            step, ts = _int(event.get("step_index")), _float(event.get("timestamp"))
            payload = event.get("payload")
            items.append(
                (
                    step or 0,
                    ts or 0.0,
                    position,
                    ts,
                    event.get("event_type"),
                    payload if isinstance(payload, dict) else {},
                )
            )
            given[position] = event
    items.sort()
    first = given[items[0][2]] if items else {}  # the first in step order names the run
    return RunView(str(first.get("run_id") or ""), str(first.get("agent_id") or ""), items, tuple(prior_step_counts))


def read_rows(run_id: str, rows: Sequence[Sequence[Any]], prior_step_counts: Sequence[int] = ()) -> RunView:
    """:func:`read_run` for one run's rows as the collector stores them
    (``schema.ROW_FIELDS``): checked at ingest, so the step is an integer,
    the time a number and the payload an object."""
    items: list[Item] = [(row[4], row[5], position, row[5], row[1], row[7]) for position, row in enumerate(rows)]
    items.sort()
    agent_id = str(rows[items[0][2]][2]) if items else ""
    return RunView(run_id, agent_id, items, tuple(prior_step_counts))


#: Longest list a piece of evidence carries (step lists of long runs).
EVIDENCE_LIST_LIMIT = 50


def capped(values: Iterable[Any], limit: int = EVIDENCE_LIST_LIMIT) -> list[Any]:
    """At most ``limit`` values, so evidence stays small on a long run."""
    out: list[Any] = []
    for value in values:
        if len(out) >= limit:
            break
        out.append(value)
    return out


def plural(count: int | float, one: str, many: str | None = None) -> str:
    """``"1 call"``, ``"3 calls"``: for explanations."""
    word = one if count == 1 else (many or one + "s")
    return f"{count:g} {word}" if isinstance(count, float) else f"{count} {word}"
