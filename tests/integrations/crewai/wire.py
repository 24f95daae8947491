"""Reading what the ingest server received, for the CrewAI tests."""

from __future__ import annotations

from typing import Any

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer


def delivered(ingest: IngestServer, dt: Dunetrace, runs: int | None = None) -> list[dict[str, Any]]:
    """Every event received, after CrewAI's handlers and our buffer drained."""
    from crewai.events import crewai_event_bus

    assert crewai_event_bus.flush(timeout=10)
    assert dt.flush(timeout=10)
    if runs is not None:
        ingest.wait_for(lambda events: sum(e["event_type"] in ("run.completed", "run.errored") for e in events) >= runs)
    return ingest.events


def by_run(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    runs: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        runs.setdefault(event["agent_id"] + "#" + event["run_id"], []).append(event)
    return runs


def shape(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(type, step, the field that says most) per event."""
    out = []
    for e in events:
        p = e["payload"]
        key = (
            p.get("tool_name")
            or p.get("finish_reason")
            or p.get("exit_reason")
            or p.get("error_type")
            or p.get("signal_name")
        )
        out.append((e["event_type"], e["step_index"], key))
    return out
