"""An Anthropic Messages API on a MockTransport: realistic JSON bodies and
SSE event streams, replayed to the real anthropic SDK.

anthropic 2.x is built on httpx2 (not httpx), so the transport is
httpx2's ``MockTransport``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

import anthropic
import httpx2

MODEL = "claude-sonnet-4-6"


def message(
    text: str | None = "Paris is the capital of France.",
    *,
    stop_reason: str = "end_turn",
    tool: tuple[str, dict[str, Any]] | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if text is not None:
        content.append({"type": "text", "text": text})
    if tool is not None:
        content.append({"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": tool[0], "input": tool[1]})
    return {
        "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage
        or {"input_tokens": 25, "output_tokens": 9, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
    }


def stream_events(
    pieces: list[str],
    *,
    stop_reason: str = "end_turn",
    tool: tuple[str, list[str]] | None = None,
    input_tokens: int = 25,
    output_tokens: int = 9,
    end: bool = True,
) -> list[dict[str, Any]]:
    """message_start, a text block (and a tool_use block streaming its input
    as partial JSON), pings, message_delta with the stop reason and usage,
    message_stop: what the API sends."""
    start = message(None, stop_reason=stop_reason)
    start.update(
        stop_reason=None,
        content=[],
        usage={
            "input_tokens": input_tokens,
            "output_tokens": 1,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        },
    )
    events: list[dict[str, Any]] = [{"type": "message_start", "message": start}]
    index = 0
    if pieces:
        events.append({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        events.append({"type": "ping"})
        events += [
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}} for p in pieces
        ]
        events.append({"type": "content_block_stop", "index": 0})
        index = 1
    if tool is not None:
        events.append(
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "tool_use", "id": "toolu_01", "name": tool[0], "input": {}},
            }
        )
        events += [
            {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": p}}
            for p in tool[1]
        ]
        events.append({"type": "content_block_stop", "index": index})
    if end:
        events.append(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            }
        )
        events.append({"type": "message_stop"})
    return events


def sse(events: list[dict[str, Any]]) -> list[bytes]:
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


class FakeAnthropic:
    """Each request takes the next reply: a dict is a JSON message, a list
    of bytes an SSE stream, an int an error status (with an Anthropic error
    body), an exception is raised by the transport."""

    ERROR_TYPES: ClassVar[dict[int, str]] = {
        429: "rate_limit_error",
        500: "api_error",
        529: "overloaded_error",
        400: "invalid_request_error",
    }

    def __init__(self) -> None:
        self.replies: list[Any] = []
        self.requests: list[dict[str, Any]] = []
        self.asynchronous = False
        self.error_message = "scripted error"

    def reply(self, *replies: Any) -> FakeAnthropic:
        self.replies.extend(replies)
        return self

    async def _apieces(self, pieces: list[bytes]) -> AsyncIterator[bytes]:
        for piece in pieces:
            await asyncio.sleep(0)  # the loop runs between pieces, as on a network
            yield piece

    def _pieces(self, pieces: list[bytes]) -> Iterator[bytes]:
        yield from pieces

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(json.loads(request.content or b"{}"))
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, int):
            body = {
                "type": "error",
                "error": {"type": self.ERROR_TYPES.get(reply, "api_error"), "message": self.error_message},
            }
            # retry-after-ms: the SDK's wait before a retry (tests stay fast)
            return httpx2.Response(reply, json=body, headers={"request-id": "req_1", "retry-after-ms": "1"})
        if isinstance(reply, list):
            return httpx2.Response(
                200,
                content=self._apieces(reply) if self.asynchronous else self._pieces(reply),
                headers={"content-type": "text/event-stream", "request-id": "req_1"},
            )
        return httpx2.Response(200, json=reply, headers={"request-id": "req_1"})


def sync_client(fake: FakeAnthropic) -> anthropic.Anthropic:
    return anthropic.Anthropic(
        api_key="sk-ant-test", max_retries=0, http_client=httpx2.Client(transport=httpx2.MockTransport(fake))
    )


def async_client(fake: FakeAnthropic) -> anthropic.AsyncAnthropic:
    fake.asynchronous = True
    return anthropic.AsyncAnthropic(
        api_key="sk-ant-test", max_retries=0, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(fake))
    )
