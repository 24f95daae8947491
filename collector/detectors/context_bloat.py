"""CONTEXT_BLOAT: the prompt keeps growing over the run.

Fires when at least ``min_calls`` (3) LLM calls report prompt tokens, the last
is at least ``growth_factor`` (3.0) times the first, and the last is at least
``min_last_tokens`` (2000) tokens (tripling a tiny prompt is no problem).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

NAME = "CONTEXT_BLOAT"
SEVERITY = "MEDIUM"
DEFAULTS = {"min_calls": 3, "growth_factor": 3.0, "min_last_tokens": 2000}
IGNORED = frozenset({"inflation_factor"})


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
