"""Wire events built by hand, as the contract describes them."""

from __future__ import annotations

import itertools
from typing import Any

_ids = itertools.count()


def event(kind: str, run_id: str = "run-1", step: int = 0, agent: str = "agent-a", **payload: Any) -> dict[str, Any]:
    return {
        "event_type": kind,
        "run_id": run_id,
        "agent_id": agent,
        "agent_version": "v1",
        "step_index": step,
        "timestamp": 1_700_000_000.0 + step,
        "payload": payload,
        "parent_run_id": None,
        "event_id": f"test-{next(_ids)}",
    }


def tool_loop_run(run_id: str, agent: str = "agent-a", calls: int = 4) -> list[dict[str, Any]]:
    """A whole run that calls one tool with the same arguments ``calls`` times."""
    events = [event("run.started", run_id, 0, agent, tools=["search"])]
    step = 0
    for _ in range(calls):
        step += 1
        events.append(event("tool.called", run_id, step, agent, tool_name="search", args_hash="a" * 64))
        events.append(event("tool.responded", run_id, step, agent, tool_name="search", success=True))
    events.append(event("run.completed", run_id, step, agent, exit_reason="final_answer", total_steps=step))
    return events


def batch(events: list[dict[str, Any]], api_key: str = "", agent: str = "agent-a") -> dict[str, Any]:
    return {"api_key": api_key, "agent_id": agent, "events": events}
