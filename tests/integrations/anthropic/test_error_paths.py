"""An API error on every path an Anthropic request can take (whole,
``stream=True``, ``messages.stream``, ``with_raw_response``,
``with_streaming_response``, sync and async): the failed call carries the
class the caller got as ``error_type``, an ``external.signal`` the HTTP
status."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anthropic
import httpx2
import pytest

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer

from .fakes import MODEL, FakeAnthropic, async_client, sse, stream_events, sync_client

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


async def test_retried_attempts_of_an_async_helper_stream_are_one_call(dt: Dunetrace, ingest: IngestServer) -> None:
    """The client's own retries (``max_retries``): each attempt an
    external.signal of the one call, in the one run."""
    fake = FakeAnthropic().reply(529, 429, sse(stream_events(["ok"])))
    fake.asynchronous = True
    client = dt.wrap_anthropic(
        anthropic.AsyncAnthropic(
            api_key="sk-ant-test", max_retries=2, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(fake))
        )
    )
    async with dt.run("agent"), client.messages.stream(**ARGS) as stream:
        await stream.get_final_message()
    assert dt.flush(5)
    assert len({e["run_id"] for e in ingest.events}) == 1
    events = ingest.events[1:-1]
    assert [e["event_type"] for e in events] == ["llm.called", "external.signal", "external.signal", "llm.responded"]
    attempts = [(e["payload"]["http_status"], e["payload"]["attempt"], e["payload"]["retrying"]) for e in events[1:3]]
    assert attempts == [(529, 1, True), (429, 2, True)]
    assert events[-1]["payload"]["finish_reason"] == "stop" and events[-1]["payload"]["completion_tokens"] == 9
