"""RAG_EMPTY_RETRIEVAL: the agent answered although retrieval found nothing.

Fires when the run ended with an answer and a retrieval returned fewer than
``min_results`` (1) results or a top score below ``min_score`` (0.3).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import plural

NAME = "RAG_EMPTY_RETRIEVAL"
SEVERITY = "MEDIUM"
DEFAULTS = {"min_score": 0.3, "min_results": 1}


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
