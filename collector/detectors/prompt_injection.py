"""PROMPT_INJECTION_SIGNAL: the run's input looks like an injection attempt.

The SDK scans the raw input in-process before hashing it and, on a match,
puts the evidence in ``run.started.payload.injection_signal`` (where the
upstream backend reads it too): the matched pattern names
(``matched_patterns``), how many matches there were (``match_count``) and
the input fields they were in (``fields``); the input itself is never sent.
Older SDKs sent an ``external.signal`` at step 0 with ``signal_name``
``prompt_injection``, ``patterns`` and ``match_count``; those runs are still
read, and so is the upstream SDK's form (``matched_pattern_count``, no
``match_count``). Fires when the matches are at least ``min_matches`` (1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import RunView, capped, plural
from ._types import Finding

NAME = "PROMPT_INJECTION_SIGNAL"
SEVERITY = "CRITICAL"
DEFAULTS = {"min_matches": 1}

#: A pattern name longer than this is not a name; it is cut.
_NAME_LIMIT = 64


def detect(run: RunView, p: Mapping[str, Any]) -> Finding | None:
    if not run.injections:
        return None
    patterns: set[str] = set()
    matches = 0
    sources: set[str] = set()
    fields: set[str] = set()
    for payload in run.injections:
        names = payload.get("matched_patterns", payload.get("patterns"))
        named = [n[:_NAME_LIMIT] for n in names if isinstance(n, str) and n] if isinstance(names, list) else []
        patterns.update(named)
        count = _count(payload.get("match_count"))
        if count is None:  # another sender: each named pattern matched at least once
            count = max(_count(payload.get("matched_pattern_count")) or 0, len(named))
        matches += count
        source = payload.get("source")
        if isinstance(source, str) and source:
            sources.add(source[:_NAME_LIMIT])
        where = payload.get("fields")
        if isinstance(where, list):
            fields.update(f[:_NAME_LIMIT] for f in where if isinstance(f, str) and f)
    if matches < p["min_matches"]:
        return None
    return Finding(
        step_index=0,
        evidence={
            "patterns": capped(sorted(patterns), 20),
            "match_count": matches,
            "min_matches": p["min_matches"],
            "sources": sorted(sources),
            "fields": capped(sorted(fields), 20),
        },
    )


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def explain(e: Mapping[str, Any]) -> dict[str, str]:
    names = ", ".join(e["patterns"]) or "unnamed patterns"
    return {
        "what": (
            f"The input to this run matched known prompt-injection phrasing {plural(e['match_count'], 'time')} "
            f"({names}). The check ran on your side before hashing; the input itself was not sent."
        ),
        "why": (
            "Text that tries to override the agent's instructions can make it ignore its rules, reveal its "
            "system prompt, or misuse its tools on someone else's behalf. Even when the attempt fails, it "
            "tells you someone is probing the agent."
        ),
        "try": (
            "Look at this run's input in your own logs. Keep untrusted text clearly separated from instructions "
            "(quote it, mark it as data), give the agent's tools the least privilege they need, and require "
            "confirmation for actions with side effects. Consider rejecting or flagging such inputs before "
            "the agent sees them."
        ),
    }
