"""Prompt-injection evidence, checked on raw text before it is hashed.

Only the names of the patterns that matched, how many times, which field
they matched in and a coarse bucket of where (``offset_bucket``, the first
match's character offset: ``0-255``, ``256-4095``, ``4096-65535`` or
``65536+``) are sent; the text itself never is. The run's input and system
prompt are checked at ``run.started`` (its ``injection_signal``, the one
place the upstream Dunetrace backend reads it; PROMPT_INJECTION_SIGNAL);
tool outputs and retrieved documents at their ``*.responded`` event (the
same key in its payload; RETRIEVED_CONTENT_INJECTION). The patterns are
deliberately plain: they flag the common phrasings of an attempt to override
the agent's instructions.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .hashing import canonical_json

__all__ = ["PATTERNS", "SCAN_LIMIT", "content_evidence", "evidence", "scan"]

_FLAGS = re.IGNORECASE | re.DOTALL

PATTERNS: dict[str, re.Pattern[str]] = {
    "ignore_previous_instructions": re.compile(
        r"\b(ignore|disregard|forget)\b.{0,30}\b(previous|prior|above|earlier|all)\b.{0,20}"
        r"\b(instructions?|prompts?|rules|directions)\b",
        _FLAGS,
    ),
    "new_system_prompt": re.compile(r"\b(new|updated|override)\s+(system\s+)?(prompt|instructions)\s*[:=]", _FLAGS),
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


#: For each pattern, the words it cannot match without (lower case): one of
#: each group. Checked with ``in`` on the lowered text before the pattern
#: runs, which spares most texts every regular expression (a tool result or
#: a message list rarely holds these words): 1 to 2 us for a short text
#: instead of 6 to 40. Only for ASCII text: IGNORECASE also folds a few other
#: characters (the Kelvin sign, the long s) onto ASCII letters.
_NEEDS: dict[str, tuple[tuple[str, ...], ...]] = {
    "ignore_previous_instructions": (
        ("ignore", "disregard", "forget"),
        ("instruction", "prompt", "rules", "directions"),
    ),
    "new_system_prompt": (("new", "updated", "override"), ("prompt", "instructions"), (":", "=")),
    "role_reassignment": (("you", "act"), ("now", "unrestricted", "jailbroken", "dan")),
    "reveal_system_prompt": (("reveal", "print", "show", "repeat", "output"), ("system", "hidden", "initial")),
    "developer_mode": (("mode",), ("developer", "god", "jailbreak")),
    "fake_role_tag": (("system", "im_start", "inst"),),
}

_CHECKS = tuple((name, pattern, _NEEDS[name]) for name, pattern in PATTERNS.items())

#: One word of one group of each pattern above (or a part of it: "inst" for
#: "instruction"), the rarest group in ordinary text: an ASCII text holding
#: none of them can match no pattern, and is done after these checks alone,
#: which is what almost every tool result and message is (0.9 us instead of
#: 1.9 for a short one). tests/core/test_injection_prefilter.py checks that
#: each pattern has a group covered here.
_GATE = (
    "inst",
    "prompt",
    "rules",
    "directions",
    "now",
    "unrestricted",
    "jailbr",
    "dan",
    "system",
    "hidden",
    "initial",
    "developer",
    "god",
    "im_start",
)


def _may_match(lowered: str, groups: tuple[tuple[str, ...], ...]) -> bool:
    for group in groups:
        for word in group:
            if word in lowered:
                break
        else:
            return False
    return True


#: Characters of one text that are scanned (the first ones): a huge tool
#: output costs the agent a bounded time.
SCAN_LIMIT = 100_000


def _bucket(offset: int) -> str:
    if offset < 256:
        return "0-255"
    if offset < 4096:
        return "256-4095"
    if offset < 65536:
        return "4096-65535"
    return "65536+"


def _scan(text: str) -> tuple[dict[str, int], int]:
    """Pattern name -> matches, and the first match's offset (-1: none)."""
    found: dict[str, int] = {}
    first = -1
    text = text[:SCAN_LIMIT]
    lowered = text.lower() if text.isascii() else None
    if lowered is not None:
        for word in _GATE:
            if word in lowered:
                break
        else:
            return found, first
    for name, pattern, groups in _CHECKS:
        if lowered is not None and not _may_match(lowered, groups):
            continue
        count = 0
        for match in pattern.finditer(text):
            if count == 0 and (first < 0 or match.start() < first):
                first = match.start()
            count += 1
        if count:
            found[name] = count
    return found, first


def scan(text: str) -> dict[str, int]:
    """Pattern name -> number of matches, for the patterns that matched."""
    return _scan(text)[0]


#: A field name (a key of a dict input) longer than this is cut; at most this
#: many fields are named. Keys are metadata, but they come from the caller.
_FIELD_LIMIT = 64
_MAX_FIELDS = 10


def _parts(value: Any, field: str, split_lists: bool) -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(field, value)]
    if isinstance(value, Mapping):
        return [
            # A key that is not a string is named by its type: its str() may raise.
            (
                f"{field}.{key if isinstance(key, str) else type(key).__name__}"[:_FIELD_LIMIT],
                item if isinstance(item, str) else canonical_json(item),
            )
            for key, item in value.items()
        ]
    if split_lists and isinstance(value, (list, tuple)):
        return [
            (f"{field}[{i}]", item if isinstance(item, str) else canonical_json(item))
            for i, item in enumerate(value[: _MAX_FIELDS * 10])
        ]
    return [(field, canonical_json(value))]


def content_evidence(value: Any, field: str = "user_input", *, split_lists: bool = False) -> dict[str, Any] | None:
    """The ``injection_signal`` object for ``value``, or None when no
    pattern matched. A string is the field ``field``; a dict (CrewAI's
    ``inputs``, a chain's input dict) is scanned key by key, so the evidence
    names ``field.<key>``; with ``split_lists`` a list item by item
    (``field[i]``: retrieved documents); anything else as its canonical JSON. Keys: ``matched_patterns`` (sorted
    names), ``matched_pattern_count``, ``match_count`` (all matches),
    ``fields``, ``offset_bucket``."""
    if value.__class__ is str:  # a tool's output, a user's message: one scan, most often with no match
        matched, offset = _scan(value)
        if not matched:
            return None
        return _evidence(matched, [field], offset)
    found: dict[str, int] = {}
    fields: list[str] = []
    first = -1
    for name, text in _parts(value, field, split_lists):
        matched, offset = _scan(text)
        if matched:
            if len(fields) < _MAX_FIELDS and name not in fields:
                fields.append(name)
            if first < 0 or offset < first:
                first = offset
            for pattern, count in matched.items():
                found[pattern] = found.get(pattern, 0) + count
    if not found:
        return None
    return _evidence(found, fields, first)


def _evidence(found: dict[str, int], fields: list[str], first: int) -> dict[str, Any]:
    return {
        "matched_patterns": sorted(found),
        "matched_pattern_count": len(found),
        "match_count": sum(found.values()),
        "fields": fields,
        "offset_bucket": _bucket(first),
    }


def evidence(user_input: Any, system_prompt: str | None = None) -> dict[str, Any] | None:
    """The ``run.started`` ``injection_signal`` for a run's input (field
    ``user_input``) and system prompt (field ``system_prompt``), or None."""
    found = content_evidence(user_input, "user_input") if user_input is not None else None
    prompt = content_evidence(system_prompt, "system_prompt") if system_prompt else None
    if prompt is None:
        return found
    if found is None:
        return prompt
    counts = dict.fromkeys(found["matched_patterns"], 0)
    counts.update(dict.fromkeys(prompt["matched_patterns"], 0))
    return {
        "matched_patterns": sorted(counts),
        "matched_pattern_count": len(counts),
        "match_count": found["match_count"] + prompt["match_count"],
        "fields": found["fields"] + prompt["fields"],
        "offset_bucket": min(found["offset_bucket"], prompt["offset_bucket"], key=_BUCKETS.index),
    }


_BUCKETS = ["0-255", "256-4095", "4096-65535", "65536+"]
