"""Wrapped calls cut short from outside: ``task.cancel()``, an
``asyncio.wait_for`` timeout, ``KeyboardInterrupt``, during a request and
during a stream. The call is answered as failed (``finish_reason="error"``,
``error_type`` the cancellation's class) and the run the cancellation ends
completes with exit_reason ``cancelled``; the exception reaches the caller
unchanged. Against the scripted API on 127.0.0.1 (a held request is in
flight for real when it is cancelled).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from dunetrace import Dunetrace
from dunetrace.exit_reasons import CANCELLED
from tests.ingest_server import IngestServer

from .fakes import MODEL, FakeOpenAI, chat_chunks, chat_completion, sse, sync_client
from .server import HELD, LocalOpenAI

HELD_MESSAGES = [{"role": "user", "content": HELD}]


@pytest.fixture
def api() -> Iterator[LocalOpenAI]:
    fake = FakeOpenAI()
    fake.default = chat_completion("Paris.")
    server = LocalOpenAI(fake)
    yield server
    server.close()


def _client(api: LocalOpenAI) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=api.url, api_key="sk-test", max_retries=0)


def _events(ingest: IngestServer, dt: Dunetrace) -> list[dict[str, Any]]:
    assert dt.flush(5)
    return ingest.events


def _assert_cancelled(events: list[dict[str, Any]], error_type: str) -> dict[str, Any]:
    kinds = [e["event_type"] for e in events]
    assert kinds == ["run.started", "llm.called", "llm.responded", "run.completed"], kinds
    answer = events[2]["payload"]
    assert answer["finish_reason"] == "error" and answer["error_type"] == error_type
    assert events[-1]["payload"]["exit_reason"] == CANCELLED
    return answer


async def _held_arrived(api: LocalOpenAI) -> None:
    assert await asyncio.get_running_loop().run_in_executor(None, api.held.wait, 10)


async def test_task_cancel_during_a_call(dt: Dunetrace, ingest: IngestServer, api: LocalOpenAI) -> None:
    client = dt.wrap_openai(_client(api))

    async def agent() -> None:
        async with dt.run("agent"):
            await client.chat.completions.create(model=MODEL, messages=HELD_MESSAGES)

    task = asyncio.create_task(agent())
    await _held_arrived(api)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    api.release()
    _assert_cancelled(_events(ingest, dt), "CancelledError")


async def test_wait_for_timeout_around_the_agent(dt: Dunetrace, ingest: IngestServer, api: LocalOpenAI) -> None:
    client = dt.wrap_openai(_client(api))

    async def agent() -> None:
        async with dt.run("agent"):
            await client.chat.completions.create(model=MODEL, messages=HELD_MESSAGES)

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(agent(), 0.5)
    api.release()
    _assert_cancelled(_events(ingest, dt), "CancelledError")


def test_keyboard_interrupt_during_a_request(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(KeyboardInterrupt())))
    with pytest.raises(KeyboardInterrupt), dt.run("agent"):
        client.chat.completions.create(model=MODEL, messages=HELD_MESSAGES)
    events = _events(ingest, dt)
    _assert_cancelled(events, "KeyboardInterrupt")
    assert not [e for e in events if e["event_type"] == "external.signal"]  # not an API error


async def test_task_cancel_while_reading_a_stream(dt: Dunetrace, ingest: IngestServer, api: LocalOpenAI) -> None:
    api.fake.reply(sse(chat_chunks(["The capital", " is", " Paris."])))
    api.fake.delay = 0.3  # between SSE pieces, on the server's thread
    client = dt.wrap_openai(_client(api))
    first = asyncio.Event()

    async def agent() -> None:
        async with dt.run("agent"):
            stream = await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True
            )
            async for _ in stream:
                first.set()

    task = asyncio.create_task(agent())
    await asyncio.wait_for(first.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    _assert_cancelled(_events(ingest, dt), "CancelledError")


async def test_a_failed_run_still_errors(dt: Dunetrace, ingest: IngestServer, api: LocalOpenAI) -> None:
    """Only cancellations end a run as cancelled: the agent's own error is
    run.errored with its class."""
    client = dt.wrap_openai(_client(api))
    with pytest.raises(LookupError):
        async with dt.run("agent"):
            await client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
            raise LookupError("no such city")
    events = _events(ingest, dt)
    assert events[-1]["event_type"] == "run.errored" and events[-1]["payload"]["error_type"] == "LookupError"


async def test_wait_for_around_one_call_inside_the_run(dt: Dunetrace, ingest: IngestServer, api: LocalOpenAI) -> None:
    """The call is cancelled (answered failed, CancelledError); the
    TimeoutError is the agent's own code raising in its run: run.errored."""
    client = dt.wrap_openai(_client(api))
    with pytest.raises(asyncio.TimeoutError):
        async with dt.run("agent"):
            await asyncio.wait_for(client.chat.completions.create(model=MODEL, messages=HELD_MESSAGES), 0.3)
    api.release()
    events = _events(ingest, dt)
    assert [e["event_type"] for e in events] == ["run.started", "llm.called", "llm.responded", "run.errored"]
    assert events[2]["payload"]["error_type"] == "CancelledError"
    assert events[-1]["payload"]["error_type"] == "TimeoutError"


def test_keyboard_interrupt_while_reading_a_stream(dt: Dunetrace, ingest: IngestServer) -> None:
    pieces = sse(chat_chunks(["The capital", " is"]))

    def body() -> Iterator[bytes]:
        yield from pieces[:2]
        raise KeyboardInterrupt  # Ctrl-C while the next piece is awaited

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body(), headers={"content-type": "text/event-stream"})

    client = dt.wrap_openai(
        openai.OpenAI(
            api_key="sk-test", max_retries=0, http_client=httpx.Client(transport=httpx.MockTransport(handler))
        )
    )
    read: list[Any] = []
    with pytest.raises(KeyboardInterrupt), dt.run("agent"):
        read.extend(client.chat.completions.create(model=MODEL, messages=HELD_MESSAGES, stream=True))
    answer = _assert_cancelled(_events(ingest, dt), "KeyboardInterrupt")
    assert "output_hash" not in answer


async def test_a_request_the_run_did_not_wait_for_is_answered_by_its_end(
    dt: Dunetrace, ingest: IngestServer, api: LocalOpenAI
) -> None:
    """A call in a task the run left running: answered ``abandoned`` before
    the run's terminal; its response, arriving later, sends nothing more."""
    client = dt.wrap_openai(_client(api))
    async with dt.run("agent"):
        task = asyncio.create_task(client.chat.completions.create(model=MODEL, messages=HELD_MESSAGES))
        await _held_arrived(api)
    api.release()
    assert (await task).choices[0].message.content == "Paris."
    events = _events(ingest, dt)
    assert [e["event_type"] for e in events] == ["run.started", "llm.called", "llm.responded", "run.completed"]
    assert events[2]["payload"]["finish_reason"] == "abandoned" and "output_hash" not in events[2]["payload"]
