"""LLM_TRUNCATION_LOOP: the model keeps hitting its output limit.

Fires when ``threshold`` (2) or more LLM responses in the run end with
``finish_reason`` ``length`` (Anthropic: ``max_tokens``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import plural

NAME = "LLM_TRUNCATION_LOOP"
SEVERITY = "HIGH"
DEFAULTS = {"threshold": 2}


def explain(e: Mapping[str, Any]) -> dict[str, str]:
    what = (
        f"{plural(e['truncations'], 'model response')} out of {e['llm_calls']} were cut off at the output "
        f"token limit (steps {', '.join(str(s) for s in e['steps'][:10])})."
    )
    tokens = e.get("prompt_tokens") or []
    if tokens:
        what += f" The prompts at those steps were {', '.join(str(t) for t in tokens[:10])} tokens long."
    return {
        "what": what,
        "why": (
            "A truncated response is an unfinished one: half a plan, broken JSON, a tool call with missing "
            "arguments. When it happens repeatedly the agent is not recovering; it calls the model again with "
            "the same shape of request and gets cut off again."
        ),
        "try": (
            "Raise the model's max output tokens, or ask for shorter output (a summary, fewer items, one step "
            "at a time). If the prompts are growing, trim the history or tool output kept in context. Make "
            "the agent treat finish_reason 'length' as an error to handle rather than an answer."
        ),
    }
