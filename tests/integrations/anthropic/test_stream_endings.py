"""Every way an Anthropic stream can end, where its call is answered, and
the tokens each streaming variant reports (``message_start`` for the
prompt, ``message_delta`` for the output). Cancellations answer the call as
failed and end the run cancelled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dunetrace import Dunetrace
from dunetrace.exit_reasons import CANCELLED
from tests.ingest_server import IngestServer

from .fakes import MODEL, FakeAnthropic, async_client, sse, stream_events, sync_client

MESSAGES = [{"role": "user", "content": "Capital of France?"}]
PIECES = ["Paris", " is", " the capital."]


def run_events(ingest: IngestServer, dt: Dunetrace) -> list[dict[str, Any]]:
    """One run's events in wire order, checked to end with its terminal."""
    assert dt.flush(5)
    events = ingest.events
    assert len({e["run_id"] for e in events}) == 1
    assert events[0]["event_type"] == "run.started"
    assert events[-1]["event_type"] in ("run.completed", "run.errored")
    return events


def answers(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    called = [e["step_index"] for e in events if e["event_type"] == "llm.called"]
    responded = [e for e in events if e["event_type"] == "llm.responded"]
    assert sorted(e["step_index"] for e in responded) == sorted(called), "a call answered twice or never"
    return [e["payload"] for e in responded]


def test_streams_never_read_are_answered_abandoned_by_the_runs_end(dt: Dunetrace, ingest: IngestServer) -> None:
    body = sse(stream_events(PIECES))
    client = dt.wrap_anthropic(sync_client(FakeAnthropic().reply(list(body), list(body))))
    with dt.run("geo"):
        raw = client.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES, stream=True)
        manager = client.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES)
        helper = manager.__enter__()
    assert [a["finish_reason"] for a in answers(run_events(ingest, dt))] == ["abandoned", "abandoned"]
    raw.close()
    manager.__exit__(None, None, None)
    assert helper is not None
    assert dt.flush(5)
    assert ingest.events[-1]["event_type"] == "run.completed"  # nothing after it


def test_a_helper_stream_read_after_its_run_is_answered_before_the_end(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_anthropic(sync_client(FakeAnthropic().reply(sse(stream_events(PIECES)))))
    with dt.run("geo"):
        manager = client.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES)
        stream = manager.__enter__()
        next(iter(stream))  # message_start read inside the run
    assert "".join(stream.text_stream) == "Paris is the capital."  # the caller still gets it all
    manager.__exit__(None, None, None)
    (answer,) = answers(run_events(ingest, dt))
    assert answer["finish_reason"] == "abandoned"
    assert answer["prompt_tokens"] == 25  # message_start had been read


@pytest.mark.parametrize("variant", ["create", "raw", "streaming_response", "helper"])
def test_every_streaming_variant_reports_the_tokens_the_api_sent(
    dt: Dunetrace, ingest: IngestServer, variant: str
) -> None:
    client = dt.wrap_anthropic(sync_client(FakeAnthropic().reply(sse(stream_events(PIECES, output_tokens=12)))))
    messages = client.messages
    options: dict[str, Any] = {"model": MODEL, "max_tokens": 50, "messages": MESSAGES}
    with dt.run("geo"):
        if variant == "create":
            kinds = [event.type for event in messages.create(stream=True, **options)]
        elif variant == "raw":
            kinds = [event.type for event in messages.with_raw_response.create(stream=True, **options).parse()]
        elif variant == "streaming_response":
            with messages.with_streaming_response.create(stream=True, **options) as response:
                kinds = [event.type for event in response.parse()]
        else:
            with messages.stream(**options) as helper:
                kinds = [helper.get_final_message().type]
    assert kinds[-1] in ("message_stop", "message")
    (answer,) = answers(run_events(ingest, dt))
    assert answer["prompt_tokens"] == 25 and answer["completion_tokens"] == 12
    assert answer["finish_reason"] == "stop"


async def test_async_streaming_response_reports_tokens(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_anthropic(async_client(FakeAnthropic().reply(sse(stream_events(PIECES, output_tokens=12)))))
    async with (
        dt.run("geo"),
        client.messages.with_streaming_response.create(
            model=MODEL, max_tokens=50, messages=MESSAGES, stream=True
        ) as response,
    ):
        async for _ in await response.parse():
            pass
    (answer,) = answers(run_events(ingest, dt))
    assert answer["prompt_tokens"] == 25 and answer["completion_tokens"] == 12


async def test_task_cancelled_while_reading_a_helper_stream(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_anthropic(async_client(FakeAnthropic().reply(sse(stream_events(PIECES)))))

    async def agent() -> None:
        async with dt.run("geo"), client.messages.stream(model=MODEL, max_tokens=50, messages=MESSAGES) as stream:
            async for _ in stream:
                # Cancelled from outside while it reads: the next read raises.
                asyncio.current_task().cancel()  # type: ignore[union-attr]

    with pytest.raises(asyncio.CancelledError):
        await asyncio.create_task(agent())
    events = run_events(ingest, dt)
    (answer,) = answers(events)
    assert answer["finish_reason"] == "error" and answer["error_type"] == "CancelledError"
    assert answer["prompt_tokens"] == 25  # what was read before
    assert events[-1]["event_type"] == "run.completed" and events[-1]["payload"]["exit_reason"] == CANCELLED


def test_keyboard_interrupt_during_a_request(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_anthropic(sync_client(FakeAnthropic().reply(KeyboardInterrupt())))
    with pytest.raises(KeyboardInterrupt), dt.run("geo"):
        client.messages.create(model=MODEL, max_tokens=50, messages=MESSAGES)
    events = run_events(ingest, dt)
    (answer,) = answers(events)
    assert answer["finish_reason"] == "error" and answer["error_type"] == "KeyboardInterrupt"
    assert events[-1]["payload"]["exit_reason"] == CANCELLED
