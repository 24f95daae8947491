"""LLM_TRUNCATION_LOOP: the model keeps hitting its output limit.

Fires when ``threshold`` (2) or more LLM responses in the run end with
``finish_reason`` ``length`` (Anthropic: ``max_tokens``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import TRUNCATED_FINISH_REASONS, RunView, capped, plural
from ._types import Finding

NAME = "LLM_TRUNCATION_LOOP"
SEVERITY = "HIGH"
DEFAULTS = {"threshold": 2}


def detect(run: RunView, p: Mapping[str, Any]) -> Finding | None:
    cut = [c for c in run.llm_calls if c.finish_reason in TRUNCATED_FINISH_REASONS]
    threshold = p["threshold"]
    if len(cut) < threshold:
        return None
    return Finding(
        step_index=cut[threshold - 1].step,
        evidence={
            "truncations": len(cut),
            "llm_calls": len(run.llm_calls),
            "threshold": threshold,
            "steps": capped(c.step for c in cut),
            "prompt_tokens": capped(c.prompt_tokens for c in cut if c.prompt_tokens is not None),
        },
    )


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
