"""EMPTY_LLM_RESPONSE: the model stopped normally but said nothing.

Fires on any LLM response with ``output_length`` 0 and ``finish_reason``
``stop`` (Anthropic: ``end_turn``). Empty text with ``tool_calls`` is normal
and is not counted. No threshold; it can only be turned off.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import STOPPED_FINISH_REASONS, RunView, capped, plural
from ._types import Finding

NAME = "EMPTY_LLM_RESPONSE"
SEVERITY = "HIGH"
DEFAULTS: dict[str, Any] = {}


def detect(run: RunView, p: Mapping[str, Any]) -> Finding | None:
    empty = [c for c in run.llm_calls if c.output_length == 0 and c.finish_reason in STOPPED_FINISH_REASONS]
    if not empty:
        return None
    return Finding(
        step_index=empty[0].step,
        evidence={
            "empty_responses": len(empty),
            "llm_calls": len(run.llm_calls),
            "first_step": empty[0].step,
            "steps": capped(c.step for c in empty),
        },
    )


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
