"""REASONING_STALL: the agent thinks a lot and acts little.

Fires when the run made at least ``min_llm_calls`` (5) LLM calls and the ratio
of LLM calls to tool calls is ``ratio_threshold`` (4.0) or more. With no tool
call the ratio counts one. Runs of an agent with no tools at all (none listed
in ``run.started``, none called) are not judged: there is nothing to act with.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import plural

NAME = "REASONING_STALL"
SEVERITY = "MEDIUM"
DEFAULTS = {"min_llm_calls": 5, "ratio_threshold": 4.0}
IGNORED = frozenset({"inflation_factor"})


def explain(e: Mapping[str, Any]) -> dict[str, str]:
    if e["tool_calls"]:
        what = (
            f"The agent made {plural(e['llm_calls'], 'LLM call')} but only {plural(e['tool_calls'], 'tool call')}: "
            f"{e['ratio']:g} model calls for every action."
        )
    else:
        what = f"The agent made {plural(e['llm_calls'], 'LLM call')} and never called one of its tools."
    return {
        "what": what,
        "why": (
            "A healthy agent alternates thinking and acting. Many model calls per action means it is "
            "deliberating, re-planning or second-guessing instead of making progress, which costs tokens and "
            "time and tends to run into step limits on harder inputs."
        ),
        "try": (
            "Shorten the planning instructions and ask for one concrete action per turn; check that the tool "
            "descriptions make it obvious which tool fits; remove reflection or self-critique loops that run "
            "every turn. If this agent reasons in many steps by design, raise REASONING_STALL's "
            "ratio_threshold in detectors.yml."
        ),
    }
