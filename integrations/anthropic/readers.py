"""What Anthropic Messages responses say about a call, whole or streamed.
Reads the SDK's objects by attribute; imports no SDK.

Written against anthropic 2.x (``Message`` and the raw stream events
``message_start`` / ``content_block_*`` / ``message_delta``, which
``messages.stream()`` passes through next to its own derived events).
"""

from __future__ import annotations

from typing import Any

from .._llm_calls import Outcome, StreamReader

__all__ = ["MessageStreamReader", "finish_reason", "messages_prompt", "model_of", "read_message"]

#: Anthropic's ``stop_reason`` in the words the detectors read (OpenAI's).
STOP_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}

_TOOL_BLOCKS = ("tool_use", "server_tool_use")


def finish_reason(stop_reason: Any) -> str | None:
    if not isinstance(stop_reason, str):
        return None
    return STOP_REASONS.get(stop_reason, stop_reason)


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _prompt_tokens(usage: Any) -> int | None:
    """Anthropic counts cached prompt tokens apart from ``input_tokens``;
    the prompt the model read is all three."""
    total = None
    for field in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"):
        value = _count(getattr(usage, field, None))
        if value is not None:
            total = (total or 0) + value
    return total


def model_of(kwargs: dict[str, Any]) -> Any:
    return kwargs.get("model")


def messages_prompt(kwargs: dict[str, Any]) -> Any:
    parts = {}
    for key in ("system", "messages"):
        value = kwargs.get(key)
        # ``messages`` may be any iterable; hashing a generator would use it up.
        if isinstance(value, (list, tuple, str)):
            parts[key] = value
    return parts or None


def read_message(message: Any) -> Outcome:
    usage = getattr(message, "usage", None)
    outcome = Outcome(
        completion_tokens=_count(getattr(usage, "output_tokens", None)),
        prompt_tokens=_prompt_tokens(usage),
        finish_reason=finish_reason(getattr(message, "stop_reason", None)),
    )
    text: list[str] = []
    for block in getattr(message, "content", None) or ():
        kind = getattr(block, "type", None)
        if kind == "text":
            text.append(getattr(block, "text", "") or "")
        elif kind in _TOOL_BLOCKS:
            outcome.tool_calls.append((getattr(block, "name", None), getattr(block, "input", None)))
    outcome.text = "".join(text)
    return outcome


class MessageStreamReader(StreamReader):
    """Raw Messages stream events: prompt tokens from ``message_start``, the
    stop reason and (cumulative) output tokens from ``message_delta``, text
    and tool input from the content blocks, by index."""

    __slots__ = ("_blocks", "_out_tokens", "_stop", "_usage_in")

    def __init__(self) -> None:
        self._usage_in: int | None = None
        self._out_tokens: int | None = None
        self._stop: Any = None
        # index -> [kind, name, pieces]
        self._blocks: dict[int, list[Any]] = {}

    def feed(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind == "content_block_delta":
            block = self._blocks.get(getattr(event, "index", -1))
            delta = getattr(event, "delta", None)
            if block is not None:
                delta_type = getattr(delta, "type", None)
                if delta_type == "text_delta":
                    block[2].append(getattr(delta, "text", "") or "")
                elif delta_type == "input_json_delta":
                    block[2].append(getattr(delta, "partial_json", "") or "")
        elif kind == "content_block_start":
            block = getattr(event, "content_block", None)
            block_type = getattr(block, "type", None)
            if block_type == "text" or block_type in _TOOL_BLOCKS:
                pieces = [getattr(block, "text", "") or ""] if block_type == "text" else []
                self._blocks[getattr(event, "index", len(self._blocks))] = [
                    block_type,
                    getattr(block, "name", None),
                    pieces,
                ]
        elif kind == "message_start":
            usage = getattr(getattr(event, "message", None), "usage", None)
            self._usage_in = _prompt_tokens(usage)
            self._out_tokens = _count(getattr(usage, "output_tokens", None))
        elif kind == "message_delta":
            stop = getattr(getattr(event, "delta", None), "stop_reason", None)
            if stop is not None:
                self._stop = stop
            usage = getattr(event, "usage", None)
            out = _count(getattr(usage, "output_tokens", None))
            if out is not None:
                self._out_tokens = out
            prompt = _prompt_tokens(usage)  # newer API versions repeat it here, cumulative
            if prompt is not None:
                self._usage_in = prompt

    def outcome(self) -> Outcome:
        text: list[str] = []
        calls: list[tuple[Any, Any]] = []
        for _, (kind, name, pieces) in sorted(self._blocks.items()):
            if kind == "text":
                text.append("".join(pieces))
            else:
                # A tool_use block streams its input as JSON text; no delta is {}.
                calls.append((name, "".join(pieces) or "{}"))
        return Outcome(
            completion_tokens=self._out_tokens,
            prompt_tokens=self._usage_in,
            finish_reason=finish_reason(self._stop),
            text="".join(text),
            tool_calls=calls,
        )
