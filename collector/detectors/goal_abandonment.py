"""GOAL_ABANDONMENT: the agent stopped using tools and then never finished.

Fires when the run called at least one tool, its last ``stall_steps`` (4) or
more actions are LLM calls with no tool or retrieval between them, and the run
did not end with an answer (it errored, stopped for another reason such as an
iteration limit, or went silent).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import plural

NAME = "GOAL_ABANDONMENT"
SEVERITY = "MEDIUM"
DEFAULTS = {"stall_steps": 4}


def explain(e: Mapping[str, Any]) -> dict[str, str]:
    endings = {
        "errored": "then the run ended with an error",
        "silent": "then the run went silent without finishing",
    }
    ending = endings.get(e["ending"], f"then the run stopped (exit reason '{e['ending']}') without an answer")
    return {
        "what": (
            f"After its last tool call ('{e['last_tool']}' at step {e['last_tool_step']}) the agent made "
            f"{plural(e['llm_calls_since_last_tool'], 'LLM call')} in a row without acting, and {ending}."
        ),
        "why": (
            "The agent was working on the task with tools, then stopped acting and only talked to the model "
            "until the run ended. It lost track of the goal, or could not decide the next action, so the user "
            "got no answer after the work already spent."
        ),
        "try": (
            f"Look at what '{e['last_tool']}' returned last: an unexpected result often leaves the model unsure "
            "what to do next. Remind the agent of the goal and of its tools on every turn, make it produce a "
            "final answer (even a partial one) when it is stuck, and give it a clear way to ask for help."
        ),
    }
