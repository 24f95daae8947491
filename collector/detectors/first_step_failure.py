"""FIRST_STEP_FAILURE: the run failed right at the start.

Fires when, at step ``max_step`` (2) or earlier, the run errored, a tool
failed, an LLM call ended with ``finish_reason`` ``error``, or an LLM returned
empty output (other than a tool call request). Early failures point at the
setup (input, prompt, credentials), not at the agent's reasoning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NAME = "FIRST_STEP_FAILURE"
SEVERITY = "MEDIUM"
DEFAULTS = {"max_step": 2}


def explain(e: Mapping[str, Any]) -> dict[str, str]:
    step = e["step"]
    trigger = e["trigger"]
    if trigger == "tool_failure":
        what = f"The tool '{e['tool']}' failed at step {step}, at the very start of the run."
    elif trigger == "llm_error":
        what = f"The LLM call at step {step}, at the very start of the run, ended with an error."
    elif trigger == "empty_llm_output":
        what = f"The model returned empty output at step {step}, at the very start of the run."
    else:
        kind = f" ({e['error_type']})" if e.get("error_type") else ""
        what = f"The run raised an error{kind} at step {step}, before it had done any real work."
    return {
        "what": what,
        "why": (
            "A failure this early is rarely about the agent's reasoning: the input, the prompt template, "
            "a missing key or permission, or a tool's configuration is broken. Every run that hits it fails "
            "the same way."
        ),
        "try": (
            "Check what changed in the setup: credentials and environment variables, the prompt template and "
            "its variables, the first tool's configuration, the input format. Run the agent once by hand with "
            "the same input. If the agent has a longer warm-up, raise FIRST_STEP_FAILURE's max_step in "
            "detectors.yml."
        ),
    }
