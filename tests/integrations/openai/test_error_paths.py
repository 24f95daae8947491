"""An API error on every path a request can take (whole, ``stream=True``,
the stream helpers, ``with_raw_response``, ``with_streaming_response``, sync
and async): the failed call carries the SDK exception's real class as
``error_type``, and an ``external.signal`` carries the HTTP status. The
caller gets the SDK's exception unchanged."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import openai
import pytest

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer

from .fakes import MODEL, FakeOpenAI, async_client, sync_client

MESSAGES = [{"role": "user", "content": "hi"}]
CHAT = {"model": MODEL, "messages": MESSAGES}


def _check(ingest: IngestServer, dt: Dunetrace, error_class: type, status: int) -> None:
    assert dt.flush(5)
    kinds = [e["event_type"] for e in ingest.events]
    assert kinds == ["run.started", "llm.called", "llm.responded", "external.signal", "run.errored"], kinds
    answer, signal = ingest.events[2]["payload"], ingest.events[3]["payload"]
    assert answer["finish_reason"] == "error" and answer["error_type"] == error_class.__name__
    assert signal["http_status"] == status and signal["error_type"] == error_class.__name__
    assert signal["signal_name"] == ("rate_limit" if status == 429 else "api_error")
    assert ingest.events[-1]["payload"]["error_type"] == error_class.__name__


def _sync_paths(client: openai.OpenAI) -> dict[str, Callable[[], Any]]:
    chat = client.chat.completions

    def streaming_response() -> None:
        with chat.with_streaming_response.create(**CHAT) as response:
            response.parse()

    def helper() -> None:
        with chat.stream(**CHAT) as stream:
            stream.get_final_completion()

    def responses_stream() -> None:
        with client.responses.stream(model="gpt-4.1", input="hi") as stream:
            stream.get_final_response()

    return {
        "create": lambda: chat.create(**CHAT),
        "stream": lambda: chat.create(stream=True, **CHAT),
        "raw": lambda: chat.with_raw_response.create(**CHAT),
        "streaming_response": streaming_response,
        "helper": helper,
        "responses": lambda: client.responses.create(model="gpt-4.1", input="hi"),
        "responses_stream": responses_stream,
    }


def _async_paths(client: openai.AsyncOpenAI) -> dict[str, Callable[[], Awaitable[Any]]]:
    chat = client.chat.completions

    async def streaming_response() -> None:
        async with chat.with_streaming_response.create(**CHAT) as response:
            await response.parse()

    async def helper() -> None:
        async with chat.stream(**CHAT) as stream:
            await stream.get_final_completion()

    return {
        "create": lambda: chat.create(**CHAT),
        "stream": lambda: chat.create(stream=True, **CHAT),
        "raw": lambda: chat.with_raw_response.create(**CHAT),
        "streaming_response": streaming_response,
        "helper": helper,
    }


SYNC_PATHS = list(_sync_paths(sync_client(FakeOpenAI())))
ASYNC_PATHS = list(_async_paths(async_client(FakeOpenAI())))
ERRORS = [(429, openai.RateLimitError), (503, openai.InternalServerError)]


@pytest.mark.parametrize("path", SYNC_PATHS)
@pytest.mark.parametrize(("status", "error_class"), ERRORS)
def test_sync_paths(dt: Dunetrace, ingest: IngestServer, path: str, status: int, error_class: type) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(status)))
    with pytest.raises(error_class), dt.run("agent"):
        _sync_paths(client)[path]()
    _check(ingest, dt, error_class, status)


@pytest.mark.parametrize("path", ASYNC_PATHS)
@pytest.mark.parametrize(("status", "error_class"), ERRORS)
async def test_async_paths(dt: Dunetrace, ingest: IngestServer, path: str, status: int, error_class: type) -> None:
    client = dt.wrap_openai(async_client(FakeOpenAI().reply(status)))
    with pytest.raises(error_class):
        async with dt.run("agent"):
            await _async_paths(client)[path]()
    _check(ingest, dt, error_class, status)
