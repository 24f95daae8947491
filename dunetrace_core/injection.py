"""Prompt-injection evidence, checked on the raw input before it is hashed.

Only the names of the patterns that matched, how many times, and which field
of the input they matched in are sent; the input itself never is. The
evidence travels in ``run.started.payload.injection_signal``, the one place
the upstream Dunetrace backend reads it (and our collector reads it there
too). The patterns are deliberately plain: they flag the common phrasings of
an attempt to override the agent's instructions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .hashing import canonical_json

__all__ = ["PATTERNS", "evidence", "scan"]

_FLAGS = re.IGNORECASE | re.DOTALL

PATTERNS: dict[str, re.Pattern[str]] = {
    "ignore_previous_instructions": re.compile(
        r"\b(ignore|disregard|forget)\b.{0,30}\b(previous|prior|above|earlier|all)\b.{0,20}"
        r"\b(instructions?|prompts?|rules|directions)\b",
        _FLAGS,
    ),
    "new_system_prompt": re.compile(
        r"\b(new|updated|override)\s+(system\s+)?(prompt|instructions)\s*[:=]", _FLAGS
    ),
    "role_reassignment": re.compile(
        r"\byou\s+are\s+now\b|\bact\s+as\s+(an?\s+)?(unrestricted|jailbroken|dan)\b", _FLAGS
    ),
    "reveal_system_prompt": re.compile(
        r"\b(reveal|print|show|repeat|output)\b.{0,30}\b(system\s+prompt|hidden\s+instructions"
        r"|initial\s+instructions)\b",
        _FLAGS,
    ),
    "developer_mode": re.compile(r"\b(developer|god|jailbreak)\s+mode\b", _FLAGS),
    "fake_role_tag": re.compile(r"(<\|?(system|im_start)\|?>|\[/?(system|inst)\])", _FLAGS),
}


def scan(text: str) -> dict[str, int]:
    """Pattern name -> number of matches, for the patterns that matched."""
    found: dict[str, int] = {}
    for name, pattern in PATTERNS.items():
        count = len(pattern.findall(text))
        if count:
            found[name] = count
    return found


#: A field name (a key of a dict input) longer than this is cut; at most this
#: many fields are named. Keys are metadata, but they come from the caller.
_FIELD_LIMIT = 64
_MAX_FIELDS = 10


def evidence(user_input: Any) -> dict[str, Any] | None:
    """The ``injection_signal`` object for a run's input, or None when no
    pattern matched. A string input is the field ``user_input``; a dict input
    (CrewAI's ``inputs``, a chain's input dict) is scanned key by key, so the
    evidence names ``user_input.<key>``; anything else is scanned as its
    canonical JSON. Keys: ``matched_patterns`` (sorted names),
    ``matched_pattern_count``, ``match_count`` (all matches), ``fields``."""
    if isinstance(user_input, str):
        parts: list[tuple[str, str]] = [("user_input", user_input)]
    elif isinstance(user_input, Mapping):
        parts = [
            # A key that is not a string is named by its type: its str() may raise.
            (f"user_input.{key if isinstance(key, str) else type(key).__name__}"[:_FIELD_LIMIT],
             value if isinstance(value, str) else canonical_json(value))
            for key, value in user_input.items()
        ]
    else:
        parts = [("user_input", canonical_json(user_input))]
    found: dict[str, int] = {}
    fields: list[str] = []
    for name, text in parts:
        matched = scan(text)
        if matched:
            if len(fields) < _MAX_FIELDS and name not in fields:
                fields.append(name)
            for pattern, count in matched.items():
                found[pattern] = found.get(pattern, 0) + count
    if not found:
        return None
    return {
        "matched_patterns": sorted(found),
        "matched_pattern_count": len(found),
        "match_count": sum(found.values()),
        "fields": fields,
    }
