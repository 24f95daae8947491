"""RETRY_STORM: one tool keeps failing and the agent keeps calling it.

Fires when the same tool fails ``threshold`` (3) times in a row in the run's
sequence of tool calls (LLM calls in between do not break the streak; a call
of another tool, a success or a call without an outcome does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import plural

NAME = "RETRY_STORM"
SEVERITY = "HIGH"
DEFAULTS = {"threshold": 3}


def explain(e: Mapping[str, Any]) -> dict[str, str]:
    tool = e["tool"]
    what = (
        f"The tool '{tool}' failed {plural(e['consecutive_failures'], 'time')} in a row "
        f"(steps {e['first_step']} to {e['last_step']}) and the agent kept calling it."
    )
    if e.get("same_error"):
        what += " It failed with the same error every time."
    if e.get("args_identical"):
        what += " The arguments never changed."
    return {
        "what": what,
        "why": (
            "A tool that fails again and again is usually down, misconfigured or rejecting the request "
            "outright; retrying through the model costs a turn per attempt and rarely succeeds. The run "
            "is likely to end at the step limit with nothing to show."
        ),
        "try": (
            f"Check '{tool}' itself (credentials, the service behind it, rate limits). Return a clear, final "
            "error the agent can act on, retry inside the tool with backoff instead of through the model, "
            "and tell the agent to give up or use another route after one or two failures."
        ),
    }
