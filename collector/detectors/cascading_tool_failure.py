"""CASCADING_TOOL_FAILURE: failures spread across several tools.

Fires when ``threshold`` (3) or more consecutive tool calls fail and they
involve at least two different tools: often one shared dependency is down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NAME = "CASCADING_TOOL_FAILURE"
SEVERITY = "HIGH"
DEFAULTS = {"threshold": 3}


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
