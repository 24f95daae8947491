"""SLOW_STEP: one tool or LLM call took far too long.

Fires when a tool call takes more than ``tool_seconds`` (15) or an LLM call
more than ``llm_seconds`` (30). The duration is the reported ``latency_ms``,
or else the time between the call's ``*.called`` and ``*.responded`` events.
MEDIUM, or HIGH when the slowest step took ``high_factor`` (5) times its
limit or more.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import plural

NAME = "SLOW_STEP"
SEVERITY = "MEDIUM"
DEFAULTS = {"tool_seconds": 15.0, "llm_seconds": 30.0, "high_factor": 5.0}
IGNORED = frozenset({"inflation_factor"})


def explain(e: Mapping[str, Any]) -> dict[str, str]:
    seconds, limit = e["duration_ms"] / 1000.0, e["limit_ms"] / 1000.0
    subject = f"A call to the tool '{e['tool']}'" if e["kind"] == "tool" else "An LLM call"
    what = f"{subject} took {seconds:.1f} s, over the {limit:g} s limit"
    what += f" ({e['ratio']:g} times the limit)." if e.get("ratio") else "."
    if e["slow_steps"] > 1:
        what += f" {plural(e['slow_steps'], 'step')} in this run were over their limit."
    if e["kind"] == "tool":
        why = (
            "A tool that hangs this long usually means the service behind it is slow or not answering and "
            "the call has no timeout; the user waits the whole time and the agent may retry it."
        )
        hint = (
            f"Give '{e['tool']}' a timeout and a clear error when it expires, check the latency of the service "
            "it calls, and cache results that do not change."
        )
    else:
        why = (
            "An LLM call this slow is usually provider latency, a very long prompt, or a very long output; "
            "the user waits the whole time, and a framework timeout may cut the run off."
        )
        hint = (
            "Set a client timeout with one retry, shorten the prompt or the requested output, stream the "
            "response, or use a faster model for this step."
        )
    return {
        "what": what,
        "why": why,
        "try": hint + " If such durations are normal here, raise SLOW_STEP's tool_seconds or llm_seconds "
        "in detectors.yml.",
    }
