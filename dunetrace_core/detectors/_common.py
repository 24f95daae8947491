"""What the detector state's parts share: finish reasons and exit reasons
that mean something, the out-of-reach threshold, and readers of payload
values that take a value of the wrong type as missing."""

from __future__ import annotations

from typing import Any

from dunetrace.exit_reasons import ANSWERED

__all__ = [
    "ANSWERED_EXIT_REASONS",
    "LIST_LIMIT",
    "OFF",
    "STOPPED",
    "TOOL_FINISH",
    "TRUNCATED",
    "UNUSUAL",
    "count",
    "name",
    "no_clock",
    "number",
]

#: ``run.completed`` exit reasons that mean the agent gave its answer
#: (``completed`` is what the SDK sends for a run that ended normally).
ANSWERED_EXIT_REASONS = ANSWERED

#: Cut off at the output limit (OpenAI ``length``, Anthropic ``max_tokens``).
TRUNCATED = frozenset({"length", "max_tokens"})
#: The model stopped by itself.
STOPPED = frozenset({"stop", "end_turn"})
#: Empty text is normal with these: the model asked for tools.
TOOL_FINISH = frozenset({"tool_calls", "function_call", "tool_use"})
#: Finish reasons that need a second look (one set lookup on the common path).
UNUSUAL = TRUNCATED | {"error"}
#: A threshold out of reach: the detector is off or has fired.
OFF = 1 << 62
#: Longest list a piece of evidence keeps.
LIST_LIMIT = 50


def count(value: Any) -> int | None:
    kind = type(value)
    if kind is int:
        return value if value >= 0 else None
    if kind is float and value == value and 0 <= value < 1e18:
        return int(value)
    return None


def number(value: Any) -> float | None:
    kind = type(value)
    if kind is float:
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if kind is int:
        return float(value)
    return None


def no_clock() -> None:
    return None


def name(value: Any) -> str | None:
    return value if type(value) is str and value else None
