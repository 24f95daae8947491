"""Prompt-injection evidence, checked on the raw input before it is hashed.

Only the names of the patterns that matched and how many times are sent; the
input itself never is. The patterns are deliberately plain: they flag the
common phrasings of an attempt to override the agent's instructions.
"""

from __future__ import annotations

import re

__all__ = ["PATTERNS", "scan"]

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
