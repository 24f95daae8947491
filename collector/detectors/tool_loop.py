"""TOOL_LOOP: the same tool called again and again.

Fires when one tool makes up ``threshold`` (3) or more of any ``window`` (5)
consecutive tool calls. A run with fewer calls than the window is one window.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import plural

NAME = "TOOL_LOOP"
SEVERITY = "HIGH"
DEFAULTS = {"threshold": 3, "window": 5}
ALIASES = {"min_repeats": "threshold"}


def explain(e: Mapping[str, Any]) -> dict[str, str]:
    tool = e["tool"]
    span = f"within {e['window']} consecutive tool calls (steps {e['first_step']} to {e['last_step']})"
    if e["calls"] == e["max_in_window"]:
        what = f"The agent called the tool '{tool}' {plural(e['calls'], 'time')} {span}."
    else:
        what = (
            f"The agent called the tool '{tool}' {plural(e['calls'], 'time')} in this run (steps "
            f"{e['first_step']} to {e['last_step']}), up to {e['max_in_window']} of them within "
            f"{e['window']} consecutive tool calls."
        )
    if e.get("args_identical"):
        what += " Every call had the same arguments."
    elif e.get("distinct_args"):
        what += f" The calls used {plural(e['distinct_args'], 'different set')} of arguments."
    if e.get("failures"):
        what += f" {plural(e['failures'], 'call')} failed."
    return {
        "what": what,
        "why": (
            "Repeating one tool usually means the agent does not get what it needs from the result, "
            "or does not notice that it already has it. Every repeat costs a model turn and time, "
            "and a loop like this tends to run until the agent's step limit."
        ),
        "try": (
            f"Look at what '{tool}' returned on those steps: an error or an empty result that the model "
            "misreads is the usual cause. Make the tool say plainly when there is nothing more to find, "
            "tell the agent not to repeat a call with the same arguments, or cap repeats in the agent loop. "
            "If repeats are normal for this agent (paging through results), raise TOOL_LOOP's threshold "
            "for it in detectors.yml."
        ),
    }
