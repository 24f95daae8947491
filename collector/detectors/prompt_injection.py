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

from ._run import plural

NAME = "PROMPT_INJECTION_SIGNAL"
SEVERITY = "CRITICAL"
DEFAULTS = {"min_matches": 1}

#: A pattern name longer than this is not a name; it is cut.
_NAME_LIMIT = 64


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
