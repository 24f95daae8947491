"""RAG_EMPTY_RETRIEVAL: the agent answered although retrieval found nothing.

Fires when the run ended with an answer and a retrieval returned fewer than
``min_results`` (1) results or a top score below ``min_score`` (0.3).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import RunView, plural
from ._types import Finding

NAME = "RAG_EMPTY_RETRIEVAL"
SEVERITY = "MEDIUM"
DEFAULTS = {"min_score": 0.3, "min_results": 1}


def detect(run: RunView, p: Mapping[str, Any]) -> Finding | None:
    if not run.answered:
        return None
    weak = [
        r
        for r in run.retrievals
        if (r.result_count is not None and r.result_count < p["min_results"])
        or (r.top_score is not None and r.top_score < p["min_score"])
    ]
    if not weak:
        return None
    # The worst: fewest results, then lowest score.
    worst = min(weak, key=lambda r: (r.result_count if r.result_count is not None else 1 << 30, r.top_score or 0.0))
    return Finding(
        step_index=worst.step,
        evidence={
            "index_name": worst.index_name,
            "result_count": worst.result_count,
            "top_score": worst.top_score,
            "min_score": p["min_score"],
            "min_results": p["min_results"],
            "weak_retrievals": len(weak),
            "retrievals": len(run.retrievals),
        },
    )


def explain(e: Mapping[str, Any]) -> dict[str, str]:
    index = f"the index '{e['index_name']}'" if e.get("index_name") else "the retriever"
    if e["result_count"] is not None and e["result_count"] < e["min_results"]:
        found = f"{index} returned {plural(e['result_count'], 'result')}"
        if e["min_results"] > 1:
            found += f", fewer than the {e['min_results']} it needs"
    else:
        found = f"the best match from {index} scored {e['top_score']:g}, below {e['min_score']:g}"
    what = f"The agent answered, but {found}."
    if e["weak_retrievals"] > 1:
        what += f" {e['weak_retrievals']} of the run's {e['retrievals']} retrievals came back empty or weak."
    return {
        "what": what,
        "why": (
            "With nothing relevant retrieved, the answer came from the model's own memory rather than from "
            "your documents: it may be out of date, made up, or about something else, while looking grounded."
        ),
        "try": (
            "Check that the index holds documents for this kind of question and that the query sent to it "
            "is well formed. Tell the agent to say it found nothing rather than answer without sources, "
            "and consider rewriting the query and retrying once. If your scores use a different range, "
            "adjust RAG_EMPTY_RETRIEVAL's min_score in detectors.yml."
        ),
    }
