"""STEP_COUNT_INFLATION: the run took far more steps than this agent's usual.

Fires when the run's steps exceed ``inflation_factor`` (2.0) times the 75th
percentile of the agent's earlier judged runs, once there are at least
``min_runs`` (10) of them. The collector passes those earlier counts.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from ._types import Finding

NAME = "STEP_COUNT_INFLATION"
SEVERITY = "MEDIUM"
DEFAULTS = {"inflation_factor": 2.0, "min_runs": 10}


def _count(value: Any) -> bool:
    """A usable step count: a non-negative int, or a finite float (NULLs and
    junk from storage are skipped)."""
    if type(value) is int:
        return value >= 0
    return type(value) is float and math.isfinite(value) and value >= 0


def p75(counts: list[int]) -> float:
    """The 75th percentile, interpolated between the nearest ranks."""
    if len(counts) == 1:
        return float(counts[0])
    return statistics.quantiles(counts, n=4, method="inclusive")[2]


def detect(total_steps: int, prior_step_counts: Sequence[Any], p: Mapping[str, Any]) -> Finding | None:
    """Needs other runs, so it runs only at the collector: ``total_steps``
    of this run against the agent's earlier runs' counts."""
    prior = [int(c) for c in prior_step_counts if _count(c)]
    if len(prior) < p["min_runs"] or not prior:
        return None
    baseline = p75(prior)
    if baseline < 1 or total_steps <= p["inflation_factor"] * baseline:
        return None
    return Finding(
        step_index=total_steps,
        evidence={
            "steps": total_steps,
            "baseline_p75": round(baseline, 1),
            "ratio": round(total_steps / baseline, 2),
            "inflation_factor": p["inflation_factor"],
            "prior_runs": len(prior),
        },
    )


def explain(e: Mapping[str, Any]) -> dict[str, str]:
    return {
        "what": (
            f"This run took {e['steps']} steps, {e['ratio']:g} times the agent's usual "
            f"(75th percentile of its {e['prior_runs']} earlier runs: {e['baseline_p75']:g} steps)."
        ),
        "why": (
            "A run much longer than usual costs more and keeps the user waiting, and it is often the first "
            "sign of a loop, a confusing input, or a change (prompt, model, tool) that made the agent less "
            "sure of itself."
        ),
        "try": (
            "Open the run's timeline and look for the steps that repeat or go nowhere; check whether a deploy "
            "happened just before. Put a step limit on the agent with a graceful final answer. If this agent's "
            "runs vary widely by design, raise STEP_COUNT_INFLATION's inflation_factor in detectors.yml."
        ),
    }
