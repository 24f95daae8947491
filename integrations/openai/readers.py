"""What OpenAI responses say about a call: Chat Completions and Responses,
whole or streamed. Reads the SDK's objects by attribute; imports no SDK.

Written against openai 2.x (``ChatCompletion``, ``ChatCompletionChunk``,
``Response`` and its stream events); fields the installed version lacks
read as None.
"""

from __future__ import annotations

from typing import Any

from .._llm_calls import Outcome, StreamReader

__all__ = [
    "ChatStreamReader",
    "ResponsesStreamReader",
    "chat_prompt",
    "model_of",
    "read_chat_completion",
    "read_response",
    "responses_prompt",
]


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def model_of(kwargs: dict[str, Any]) -> Any:
    return kwargs.get("model")


def _sequence(value: Any) -> Any:
    # ``messages`` may be any iterable; hashing a generator would use it up.
    return value if isinstance(value, (list, tuple, str)) else None


def chat_prompt(kwargs: dict[str, Any]) -> Any:
    return _sequence(kwargs.get("messages"))


def responses_prompt(kwargs: dict[str, Any]) -> Any:
    parts = {key: _sequence(kwargs.get(key)) for key in ("instructions", "input")}
    parts = {key: value for key, value in parts.items() if value is not None}
    return parts or None


# -- Chat Completions -----------------------------------------------------------


def read_chat_completion(completion: Any) -> Outcome:
    usage = getattr(completion, "usage", None)
    outcome = Outcome(
        completion_tokens=_count(getattr(usage, "completion_tokens", None)),
        prompt_tokens=_count(getattr(usage, "prompt_tokens", None)),
    )
    choices = getattr(completion, "choices", None) or []
    if not choices:
        return outcome
    first = choices[0]  # n > 1: the first choice stands for the call
    outcome.finish_reason = getattr(first, "finish_reason", None)
    message = getattr(first, "message", None)
    content = getattr(message, "content", None)
    refusal = getattr(message, "refusal", None)
    outcome.text = content if isinstance(content, str) else refusal if isinstance(refusal, str) else ""
    for call in getattr(message, "tool_calls", None) or []:
        function = getattr(call, "function", None) or getattr(call, "custom", None)
        if function is not None:
            arguments = getattr(function, "arguments", None)
            if arguments is None:
                arguments = getattr(function, "input", None)
            outcome.tool_calls.append((getattr(function, "name", None), arguments))
    legacy = getattr(message, "function_call", None)
    if legacy is not None:
        outcome.tool_calls.append((getattr(legacy, "name", None), getattr(legacy, "arguments", None)))
    return outcome


class ChatStreamReader(StreamReader):
    """``ChatCompletionChunk``s: content and tool-call pieces of choice 0,
    its finish reason, and the usage chunk the API sends last when asked
    (``stream_options={"include_usage": True}``)."""

    __slots__ = ("_finish", "_text", "_tools", "_usage")

    def __init__(self) -> None:
        self._text: list[str] = []
        self._tools: dict[int, list[Any]] = {}
        self._finish: str | None = None
        self._usage: Any = None

    def feed(self, chunk: Any) -> None:
        usage = getattr(chunk, "usage", None)
        if usage is not None:
            self._usage = usage
        for choice in getattr(chunk, "choices", None) or ():
            if getattr(choice, "index", 0) != 0:
                continue
            delta = getattr(choice, "delta", None)
            content = getattr(delta, "content", None)
            if content:
                self._text.append(content)
            for call in getattr(delta, "tool_calls", None) or ():
                entry = self._tools.setdefault(getattr(call, "index", 0) or 0, [None, []])
                function = getattr(call, "function", None)
                if function is not None:
                    if getattr(function, "name", None):
                        entry[0] = function.name
                    if getattr(function, "arguments", None):
                        entry[1].append(function.arguments)
            legacy = getattr(delta, "function_call", None)
            if legacy is not None:
                entry = self._tools.setdefault(-1, [None, []])
                if getattr(legacy, "name", None):
                    entry[0] = legacy.name
                if getattr(legacy, "arguments", None):
                    entry[1].append(legacy.arguments)
            finish = getattr(choice, "finish_reason", None)
            if finish:
                self._finish = finish

    def outcome(self) -> Outcome:
        usage = self._usage
        return Outcome(
            completion_tokens=_count(getattr(usage, "completion_tokens", None)),
            prompt_tokens=_count(getattr(usage, "prompt_tokens", None)),
            finish_reason=self._finish,
            text="".join(self._text),
            tool_calls=[
                (name, "".join(pieces))
                for key, (name, pieces) in sorted(self._tools.items(), key=lambda item: (item[0] < 0, item[0]))
            ],
        )


# -- Responses ------------------------------------------------------------------

_TOOL_ITEMS = ("function_call", "custom_tool_call")


def _finish_reason(response: Any, called_tools: bool) -> str | None:
    """The Responses API has no finish reason; its status says the same."""
    status = getattr(response, "status", None)
    if status == "incomplete":
        reason = getattr(getattr(response, "incomplete_details", None), "reason", None)
        return "length" if reason == "max_output_tokens" else (reason or "incomplete")
    if status == "failed":
        return "error"
    if called_tools:
        return "tool_calls"
    if status == "completed":
        return "stop"
    return status if isinstance(status, str) else None


def read_response(response: Any) -> Outcome:
    usage = getattr(response, "usage", None)
    outcome = Outcome(
        completion_tokens=_count(getattr(usage, "output_tokens", None)),
        prompt_tokens=_count(getattr(usage, "input_tokens", None)),
    )
    text: list[str] = []
    for item in getattr(response, "output", None) or ():
        kind = getattr(item, "type", None)
        if kind == "message":
            for part in getattr(item, "content", None) or ():
                part_type = getattr(part, "type", None)
                if part_type == "output_text":
                    text.append(getattr(part, "text", "") or "")
                elif part_type == "refusal":
                    text.append(getattr(part, "refusal", "") or "")
        elif kind in _TOOL_ITEMS:
            arguments = getattr(item, "arguments", None)
            if arguments is None:
                arguments = getattr(item, "input", None)
            outcome.tool_calls.append((getattr(item, "name", None), arguments))
    outcome.text = "".join(text)
    outcome.finish_reason = _finish_reason(response, bool(outcome.tool_calls))
    return outcome


class ResponsesStreamReader(StreamReader):
    """Responses stream events. The terminal event (``response.completed``,
    ``.incomplete``, ``.failed``) carries the whole response with usage;
    before it, text deltas and finished tool calls stand in for a stream
    closed early."""

    __slots__ = ("_final", "_text", "_tools")

    _TERMINAL = frozenset(("response.completed", "response.incomplete", "response.failed"))

    def __init__(self) -> None:
        self._text: list[str] = []
        self._tools: list[tuple[Any, Any]] = []
        self._final: Any = None

    def feed(self, event: Any) -> None:
        kind = getattr(event, "type", None)
        if kind == "response.output_text.delta":
            self._text.append(getattr(event, "delta", "") or "")
        elif kind in self._TERMINAL:
            self._final = getattr(event, "response", None)
        elif kind == "response.output_item.done":
            item = getattr(event, "item", None)
            if getattr(item, "type", None) in _TOOL_ITEMS:
                arguments = getattr(item, "arguments", None)
                if arguments is None:
                    arguments = getattr(item, "input", None)
                self._tools.append((getattr(item, "name", None), arguments))

    def outcome(self) -> Outcome:
        if self._final is not None:
            return read_response(self._final)
        return Outcome(text="".join(self._text), tool_calls=list(self._tools))
