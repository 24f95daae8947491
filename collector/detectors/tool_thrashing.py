"""TOOL_THRASHING: the agent switches back and forth between two tools.

Fires when ``window`` (6) consecutive tool calls alternate between exactly
two tools: A, B, A, B, A, B.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NAME = "TOOL_THRASHING"
SEVERITY = "HIGH"
DEFAULTS = {"window": 6}


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
