"""Reading what the ingest server received, grouped by run."""

from __future__ import annotations

from collections import defaultdict
from typing import Any


def by_run(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        runs[event["run_id"]].append(event)
    return dict(runs)


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["event_type"] for e in events]


def only(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event_type"] == event_type]


def tool_loop(events: list[dict[str, Any]]) -> bool:
    """The contract's TOOL_LOOP rule: the same tool >= 3 times within a
    window of 5 tool calls."""
    names = [e["payload"]["tool_name"] for e in only(events, "tool.called")]
    for start in range(max(1, len(names) - 4)):
        window = names[start : start + 5]
        if any(window.count(name) >= 3 for name in set(window)):
            return True
    return False


def well_formed(events: list[dict[str, Any]]) -> None:
    """One run's events: started first at step 0, one terminal event last,
    every responded event on the step of its called event."""
    assert events[0]["event_type"] == "run.started" and events[0]["step_index"] == 0
    assert events[-1]["event_type"] in ("run.completed", "run.errored")
    assert [e["event_type"] for e in events].count("run.started") == 1
    assert sum(e["event_type"] in ("run.completed", "run.errored") for e in events) == 1
    open_steps: dict[int, str] = {}
    for event in events:
        kind, _, phase = event["event_type"].partition(".")
        if phase == "called":
            assert event["step_index"] not in open_steps
            open_steps[event["step_index"]] = kind
        elif phase == "responded":
            assert open_steps.pop(event["step_index"]) == kind, event
    assert not open_steps, f"called without responded: {open_steps}"
