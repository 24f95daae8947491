"""TOOL_THRASHING: the agent switches back and forth between two tools.

Fires when ``window`` (6) consecutive tool calls alternate between exactly
two tools: A, B, A, B, A, B.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import RunView
from ._types import Finding

NAME = "TOOL_THRASHING"
SEVERITY = "HIGH"
DEFAULTS = {"window": 6}


def detect(run: RunView, p: Mapping[str, Any]) -> Finding | None:
    names = [c.name for c in run.tool_calls]
    window = p["window"]
    length = 0  # length of the alternating stretch ending at i
    best: tuple[int, int] | None = None  # (longest length, its last index)
    reached: int | None = None  # index where the first stretch reached the window
    for i, name in enumerate(names):
        if i == 0 or name == names[i - 1]:
            length = 1
        elif length >= 2 and name == names[i - 2]:
            length += 1
        else:
            length = 2
        if length >= window >= 2:
            if reached is None:
                reached = i
            if best is None or length > best[0]:
                best = (length, i)
    if best is None or reached is None:
        return None
    length, end = best
    calls = run.tool_calls[end - length + 1 : end + 1]
    return Finding(
        step_index=run.tool_calls[reached].step,
        evidence={
            "tool_a": calls[0].name,
            "tool_b": calls[1].name,
            "alternating_calls": length,
            "window": window,
            "first_step": calls[0].step,
            "last_step": calls[-1].step,
        },
    )


def explain(e: Mapping[str, Any]) -> dict[str, str]:
    a, b = e["tool_a"], e["tool_b"]
    return {
        "what": (
            f"The agent switched between '{a}' and '{b}' {e['alternating_calls']} tool calls in a row "
            f"(steps {e['first_step']} to {e['last_step']}), never calling anything else."
        ),
        "why": (
            "Ping-ponging between two tools usually means their results disagree, or one tool's output "
            "sends the agent to the other and back, and the agent cannot settle. It burns steps without "
            "getting closer to an answer."
        ),
        "try": (
            f"Compare what '{a}' and '{b}' return on those steps. Give the agent a rule for which result "
            "wins when they disagree, or merge the two tools into one, and stop the loop after a few "
            "switches. If this back-and-forth is by design, raise TOOL_THRASHING's window in detectors.yml."
        ),
    }
