"""EMPTY_LLM_RESPONSE: the model stopped normally but said nothing.

Fires on any LLM response with ``output_length`` 0 and ``finish_reason``
``stop`` (Anthropic: ``end_turn``). Empty text with ``tool_calls`` is normal
and is not counted. No threshold; it can only be turned off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import plural

NAME = "EMPTY_LLM_RESPONSE"
SEVERITY = "HIGH"
DEFAULTS: dict[str, Any] = {}


def explain(e: Mapping[str, Any]) -> dict[str, str]:
    return {
        "what": (
            f"The model returned an empty response {plural(e['empty_responses'], 'time')} "
            f"(out of {plural(e['llm_calls'], 'call')}, first at step {e['first_step']}), while reporting that it "
            "had finished normally."
        ),
        "why": (
            "Most agent frameworks do not expect an empty answer: the agent may pass a blank answer to the "
            "user, crash while parsing it, or loop asking again. It often points to a content filter, a "
            "malformed prompt, or a response the client failed to read."
        ),
        "try": (
            "Check the request at that step: an empty or oversized prompt, a stop sequence that matches at "
            "the very start, or a safety filter. Treat an empty response as a failure in the agent loop and "
            "retry once with a nudge, or fail clearly instead of answering with nothing."
        ),
    }
