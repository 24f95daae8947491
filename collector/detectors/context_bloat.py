"""CONTEXT_BLOAT: the prompt keeps growing over the run.

Fires when at least ``min_calls`` (3) LLM calls report prompt tokens, the last
is at least ``growth_factor`` (3.0) times the first, and the last is at least
``min_last_tokens`` (2000) tokens (tripling a tiny prompt is no problem).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import RunView
from ._types import Finding

NAME = "CONTEXT_BLOAT"
SEVERITY = "MEDIUM"
DEFAULTS = {"min_calls": 3, "growth_factor": 3.0, "min_last_tokens": 2000}
IGNORED = frozenset({"inflation_factor"})


def detect(run: RunView, p: Mapping[str, Any]) -> Finding | None:
    calls = [c for c in run.llm_calls if c.prompt_tokens]
    if len(calls) < p["min_calls"]:
        return None
    first, last = calls[0], calls[-1]
    first_tokens, last_tokens = first.prompt_tokens or 1, last.prompt_tokens or 0  # non-zero: filtered above
    growth = last_tokens / first_tokens
    if growth < p["growth_factor"] or last_tokens < p["min_last_tokens"]:
        return None
    return Finding(
        step_index=last.step,
        evidence={
            "first_tokens": first_tokens,
            "last_tokens": last_tokens,
            "growth": round(growth, 2),
            "growth_factor": p["growth_factor"],
            "llm_calls_with_tokens": len(calls),
            "first_step": first.step,
            "last_step": last.step,
        },
    )


def explain(e: Mapping[str, Any]) -> dict[str, str]:
    return {
        "what": (
            f"The prompt grew from {e['first_tokens']} tokens at step {e['first_step']} to {e['last_tokens']} "
            f"tokens at step {e['last_step']}, {e['growth']:g} times as large, over "
            f"{e['llm_calls_with_tokens']} LLM calls."
        ),
        "why": (
            "Each call resends everything gathered so far: long tool outputs, retrieved documents, the whole "
            "history. Cost and latency grow with every step, the model pays less attention to what matters, "
            "and the run eventually hits the context window or starts getting truncated."
        ),
        "try": (
            "Keep only what the next step needs: summarise or truncate tool outputs before adding them to "
            "the history, drop old turns or replace them with a running summary, and limit how many "
            "documents a retrieval adds. If this agent is meant to accumulate context, raise CONTEXT_BLOAT's "
            "growth_factor or min_last_tokens for it in detectors.yml."
        ),
    }
