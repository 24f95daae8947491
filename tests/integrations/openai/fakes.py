"""An OpenAI API on an ``httpx.MockTransport``: realistic JSON bodies and
SSE streams, replayed to the real openai SDK."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import openai

MODEL = "gpt-4o-mini"


def chat_completion(
    content: str | None = "The capital of France is Paris.",
    *,
    finish_reason: str = "stop",
    tool_calls: list[dict[str, Any]] | None = None,
    prompt_tokens: int = 21,
    completion_tokens: int = 8,
) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
        "object": "chat.completion",
        "created": 1741569952,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
        },
        "service_tier": "default",
        "system_fingerprint": "fp_06737a9306",
    }


def tool_call(name: str, arguments: str, call_id: str = "call_abc123") -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def _chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-123",
        "object": "chat.completion.chunk",
        "created": 1694268190,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_44709d6fcb",
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }


def chat_chunks(
    pieces: list[str],
    *,
    finish_reason: str = "stop",
    usage: tuple[int, int] | None = (21, 8),
    tool: tuple[str, list[str]] | None = None,
) -> list[dict[str, Any]]:
    """A streamed chat completion: role, content pieces (or one tool call
    whose arguments come in pieces), the finish chunk, and the usage chunk
    the API sends last with ``include_usage``."""
    chunks = [_chunk({"role": "assistant", "content": "" if tool is None else None, "refusal": None})]
    chunks += [_chunk({"content": piece}) for piece in pieces]
    if tool is not None:
        name, arg_pieces = tool
        chunks.append(
            _chunk(
                {
                    "tool_calls": [
                        {"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": ""}}
                    ]
                }
            )
        )
        chunks += [_chunk({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in arg_pieces]
    chunks.append(_chunk({}, finish_reason))
    if usage is not None:
        chunks.append(
            {
                "id": "chatcmpl-123",
                "object": "chat.completion.chunk",
                "created": 1694268190,
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [],
                "usage": {
                    "prompt_tokens": usage[0],
                    "completion_tokens": usage[1],
                    "total_tokens": usage[0] + usage[1],
                },
            }
        )
    return chunks


def response_object(
    text: str = "Paris.",
    *,
    status: str = "completed",
    function_call: tuple[str, str] | None = None,
    incomplete_reason: str | None = None,
) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if text:
        output.append(
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        )
    if function_call is not None:
        output.append(
            {
                "type": "function_call",
                "id": "fc_1",
                "call_id": "call_1",
                "status": "completed",
                "name": function_call[0],
                "arguments": function_call[1],
            }
        )
    return {
        "id": "resp_67ccd2bed1ec8190b14f964abc054267",
        "object": "response",
        "created_at": 1741476542,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": incomplete_reason} if incomplete_reason else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": "gpt-4.1-2025-04-14",
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": {
            "input_tokens": 36,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": 87,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 123,
        },
        "user": None,
        "metadata": {},
    }


def response_events(pieces: list[str]) -> list[dict[str, Any]]:
    full = response_object("".join(pieces))
    created = dict(full, status="in_progress", output=[], usage=None)
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": created},
        {"type": "response.in_progress", "response": created},
    ]
    message = {"type": "message", "id": "msg_1", "status": "in_progress", "role": "assistant", "content": []}
    part = {"type": "output_text", "text": "", "annotations": []}
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    events.append({"type": "response.output_item.added", "output_index": 0, "item": message})
    events.append({"type": "response.content_part.added", **where, "part": part})
    for piece in pieces:
        events.append({"type": "response.output_text.delta", **where, "delta": piece, "logprobs": []})
    text = "".join(pieces)
    events.append({"type": "response.output_text.done", **where, "text": text, "logprobs": []})
    events.append({"type": "response.content_part.done", **where, "part": dict(part, text=text)})
    events.append({"type": "response.output_item.done", "output_index": 0, "item": full["output"][0]})
    events.append({"type": "response.completed", "response": full})
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


def sse(events: list[dict[str, Any]], *, named: bool = False, done: bool = True) -> list[bytes]:
    """One SSE message per event; Responses streams name their events."""
    out = []
    for event in events:
        head = f"event: {event['type']}\n" if named else ""
        out.append(f"{head}data: {json.dumps(event)}\n\n".encode())
    if done:
        out.append(b"data: [DONE]\n\n")
    return out


Handler = Callable[[httpx.Request], httpx.Response]


class FakeOpenAI:
    """Answers from a script: each request takes the next reply (a dict is
    JSON, a list of bytes is an SSE stream, an int is an error status, an
    exception is raised by the transport). ``log`` records SSE pieces as
    they are produced, so tests can see when the SDK read them."""

    def __init__(self) -> None:
        self.replies: list[Any] = []
        self.requests: list[dict[str, Any]] = []
        self.log: list[str] = []
        self.delay = 0.0
        self.asynchronous = False
        self.error_message = "scripted error"
        #: answered once the script is used up (None: a test bug, raise)
        self.default: Any = None

    def reply(self, *replies: Any) -> FakeOpenAI:
        self.replies.extend(replies)
        return self

    def _pieces(self, pieces: list[bytes]) -> Iterator[bytes]:
        for i, piece in enumerate(pieces):
            if self.delay:
                time.sleep(self.delay)
            self.log.append(f"produced {i}")
            yield piece

    async def _apieces(self, pieces: list[bytes]) -> AsyncIterator[bytes]:
        for piece in self._pieces(pieces):
            yield piece

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(json.loads(request.content or b"{}"))
        reply = self.replies.pop(0) if self.replies or self.default is None else self.default
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(reply, int):
            return httpx.Response(
                reply,
                json={"error": {"message": self.error_message, "type": "requests", "param": None, "code": None}},
                # The SDK waits this long before a retry (tests stay fast).
                headers={"x-request-id": "req_1", "retry-after-ms": "1"},
            )
        if isinstance(reply, list):
            return httpx.Response(
                200,
                content=self._apieces(reply) if self.asynchronous else self._pieces(reply),
                headers={"content-type": "text/event-stream"},
            )
        return httpx.Response(200, json=reply, headers={"x-request-id": "req_1"})


def sync_client(fake: FakeOpenAI) -> openai.OpenAI:
    return openai.OpenAI(
        api_key="sk-test", max_retries=0, http_client=httpx.Client(transport=httpx.MockTransport(fake))
    )


def async_client(fake: FakeOpenAI) -> openai.AsyncOpenAI:
    # MockTransport answers async requests with the same handler; only a
    # streamed body must be an async iterator.
    fake.asynchronous = True
    return openai.AsyncOpenAI(
        api_key="sk-test", max_retries=0, http_client=httpx.AsyncClient(transport=httpx.MockTransport(fake))
    )
