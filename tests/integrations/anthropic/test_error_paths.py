"""An API error on every path an Anthropic request can take (whole,
``stream=True``, ``messages.stream``, ``with_raw_response``,
``with_streaming_response``, sync and async): the failed call carries the
class the caller got as ``error_type``, an ``external.signal`` the HTTP
status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
import pytest

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer

from .fakes import MODEL, FakeAnthropic, async_client, sync_client

ARGS = {"model": MODEL, "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}


def _check(ingest: IngestServer, dt: Dunetrace, raised: BaseException, status: int) -> None:
    assert dt.flush(5)
    kinds = [e["event_type"] for e in ingest.events]
    assert kinds == ["run.started", "llm.called", "llm.responded", "external.signal", "run.errored"], kinds
    answer, signal = ingest.events[2]["payload"], ingest.events[3]["payload"]
    name = type(raised).__name__
    assert name != "APIStatusError"  # the SDK's own class for this status
    assert answer["finish_reason"] == "error" and answer["error_type"] == name
    assert signal["http_status"] == status and signal["error_type"] == name


def _sync_paths(client: anthropic.Anthropic) -> dict[str, Callable[[], Any]]:
    messages = client.messages

    def streaming_response() -> None:
        with messages.with_streaming_response.create(**ARGS) as response:
            response.parse()

    def helper() -> None:
        with messages.stream(**ARGS) as stream:
            stream.get_final_message()

    return {
        "create": lambda: messages.create(**ARGS),
        "stream": lambda: messages.create(stream=True, **ARGS),
        "raw": lambda: messages.with_raw_response.create(**ARGS),
        "streaming_response": streaming_response,
        "helper": helper,
    }


def _async_paths(client: anthropic.AsyncAnthropic) -> dict[str, Callable[[], Awaitable[Any]]]:
    messages = client.messages

    async def streaming_response() -> None:
        async with messages.with_streaming_response.create(**ARGS) as response:
            await response.parse()

    async def helper() -> None:
        async with messages.stream(**ARGS) as stream:
            await stream.get_final_message()

    return {
        "create": lambda: messages.create(**ARGS),
        "stream": lambda: messages.create(stream=True, **ARGS),
        "raw": lambda: messages.with_raw_response.create(**ARGS),
        "streaming_response": streaming_response,
        "helper": helper,
    }


PATHS = list(_sync_paths(sync_client(FakeAnthropic())))


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("status", [429, 529])
def test_sync_paths(dt: Dunetrace, ingest: IngestServer, path: str, status: int) -> None:
    client = dt.wrap_anthropic(sync_client(FakeAnthropic().reply(status)))
    with pytest.raises(anthropic.APIStatusError) as raised, dt.run("agent"):
        _sync_paths(client)[path]()
    _check(ingest, dt, raised.value, status)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("status", [429, 529])
async def test_async_paths(dt: Dunetrace, ingest: IngestServer, path: str, status: int) -> None:
    client = dt.wrap_anthropic(async_client(FakeAnthropic().reply(status)))
    with pytest.raises(anthropic.APIStatusError) as raised:
        async with dt.run("agent"):
            await _async_paths(client)[path]()
    _check(ingest, dt, raised.value, status)
