"""CASCADING_TOOL_FAILURE: failures spread across several tools.

Fires when ``threshold`` (3) or more consecutive tool calls fail and they
involve at least two different tools: often one shared dependency is down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import RunView, ToolCall, capped
from ._types import Finding

NAME = "CASCADING_TOOL_FAILURE"
SEVERITY = "HIGH"
DEFAULTS = {"threshold": 3}


def detect(run: RunView, p: Mapping[str, Any]) -> Finding | None:
    threshold = p["threshold"]
    calls = run.tool_calls
    start = 0  # first index of the current streak of failures
    names: dict[str, int] = {}  # tool -> failures in the current streak
    best: tuple[int, int] | None = None
    reached: ToolCall | None = None
    for i, call in enumerate(calls):
        if call.success is not False:
            start, names = i + 1, {}
            continue
        names[call.name] = names.get(call.name, 0) + 1
        if i - start + 1 >= threshold and len(names) >= 2:
            if reached is None:
                reached = call
            if best is None or i - start > best[1] - best[0]:
                best = (start, i)
    if best is None or reached is None:
        return None
    streak = calls[best[0] : best[1] + 1]
    tools = sorted({c.name for c in streak})
    return Finding(
        step_index=reached.step,
        evidence={
            "consecutive_failures": len(streak),
            "tools": capped(tools),
            "distinct_tools": len(tools),
            "threshold": threshold,
            "first_step": streak[0].step,
            "last_step": streak[-1].step,
            "steps": capped(c.step for c in streak),
        },
    )


def explain(e: Mapping[str, Any]) -> dict[str, str]:
    names = ", ".join(f"'{t}'" for t in e["tools"])
    return {
        "what": (
            f"{e['consecutive_failures']} tool calls in a row failed (steps {e['first_step']} to "
            f"{e['last_step']}), across {e['distinct_tools']} different tools: {names}."
        ),
        "why": (
            "When several different tools fail one after another, the cause is rarely the tools themselves: "
            "something they all depend on (network, a gateway, a database, credentials) is likely down. "
            "Switching tools cannot help the agent, so it cannot make progress."
        ),
        "try": (
            "Check what these tools have in common and whether it was reachable at the time of the run. "
            "Add a health check before the agent starts, and let the agent stop early with a clear message "
            "when its tools are failing instead of trying each one in turn."
        ),
    }
