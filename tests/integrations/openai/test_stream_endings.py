"""Every way an OpenAI stream can end, and where its call is answered.

A stream is answered once, always before its run's terminal event: at its
end (the API's finish reason and usage), when its reader stops early
(``partial``), or by the run's end when the run ends first (``abandoned``,
with what was read). Raw and streaming-response variants report the tokens
the API sent.
"""

from __future__ import annotations

import gc
from typing import Any

import pytest

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer

from .fakes import MODEL, FakeOpenAI, async_client, chat_chunks, response_events, sse, sync_client

MESSAGES = [{"role": "user", "content": "Capital of France?"}]
USAGE = {"include_usage": True}
PIECES = ["The capital", " is", " Paris."]


def run_events(ingest: IngestServer, dt: Dunetrace) -> list[dict[str, Any]]:
    """One run's events in wire order, checked to end with its terminal."""
    assert dt.flush(5)
    (run_id,) = {e["run_id"] for e in ingest.events}
    events = [e for e in ingest.events if e["run_id"] == run_id]
    assert events[0]["event_type"] == "run.started"
    assert events[-1]["event_type"] in ("run.completed", "run.errored")
    return events


def answers(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    called = [e["step_index"] for e in events if e["event_type"] == "llm.called"]
    responded = [e for e in events if e["event_type"] == "llm.responded"]
    assert sorted(e["step_index"] for e in responded) == sorted(called), "a call answered twice or never"
    return [e["payload"] for e in responded]


def test_a_stream_never_read_is_answered_abandoned_by_its_runs_end(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(sse(chat_chunks(PIECES)))))
    with dt.run("geo"):
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    (answer,) = answers(run_events(ingest, dt))
    assert answer["finish_reason"] == "abandoned"
    assert "completion_tokens" not in answer and "output_hash" not in answer  # nothing was read
    stream.close()  # closing it later sends nothing more
    assert dt.flush(5)
    assert ingest.events[-1]["event_type"] == "run.completed"


def test_a_stream_read_after_its_run_ended_is_answered_before_the_end(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(sse(chat_chunks(PIECES)))))
    with dt.run("geo"):
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        first = next(iter(stream))  # one chunk read inside the run
    rest = list(stream)  # the caller still gets every chunk
    assert first.choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in rest if c.choices) == "The capital is Paris."
    events = run_events(ingest, dt)  # nothing after run.completed
    (answer,) = answers(events)
    assert answer["finish_reason"] == "abandoned"


async def test_an_async_stream_never_read_is_answered_by_its_runs_end(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(async_client(FakeOpenAI().reply(sse(chat_chunks(PIECES)))))
    async with dt.run("geo"):
        stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    (answer,) = answers(run_events(ingest, dt))
    assert answer["finish_reason"] == "abandoned"
    await stream.close()
    assert dt.flush(5)
    assert ingest.events[-1]["event_type"] == "run.completed"


def test_a_stream_left_by_break_is_partial_with_what_was_read(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(sse(chat_chunks(PIECES)))))
    with dt.run("geo"):
        for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                break
        gc.collect()  # the dropped stream's generator is closed: its reader stopped
    (answer,) = answers(run_events(ingest, dt))
    assert answer["finish_reason"] == "partial"
    assert answer["output_length"] == len("The capital")


def test_a_stream_stopped_after_its_finish_reason_keeps_it(dt: Dunetrace, ingest: IngestServer) -> None:
    """The usage chunk comes last; a reader that stops at the finish chunk
    read the whole answer."""
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(sse(chat_chunks(PIECES)))))
    with dt.run("geo"):
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True, stream_options=USAGE)
        for chunk in stream:
            if chunk.choices and chunk.choices[0].finish_reason:
                break
        stream.close()
    (answer,) = answers(run_events(ingest, dt))
    assert answer["finish_reason"] == "stop" and "completion_tokens" not in answer


async def test_async_with_exit_is_partial(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(async_client(FakeOpenAI().reply(sse(chat_chunks(PIECES)))))
    async with (
        dt.run("geo"),
        await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as stream,
    ):
        async for _ in stream:
            break
    (answer,) = answers(run_events(ingest, dt))
    assert answer["finish_reason"] == "partial"


@pytest.mark.parametrize("variant", ["create", "raw", "streaming_response", "helper", "beta_helper"])
def test_every_streaming_variant_reports_the_tokens_the_api_sent(
    dt: Dunetrace, ingest: IngestServer, variant: str
) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(sse(chat_chunks(PIECES)))))
    chat = client.chat.completions
    options: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "stream_options": USAGE}
    with dt.run("geo"):
        if variant == "create":
            text = [c.choices[0].delta.content for c in chat.create(stream=True, **options) if c.choices]
        elif variant == "raw":
            raw = chat.with_raw_response.create(stream=True, **options)
            text = [c.choices[0].delta.content for c in raw.parse() if c.choices]
        elif variant == "streaming_response":
            with chat.with_streaming_response.create(stream=True, **options) as response:
                text = [c.choices[0].delta.content for c in response.parse() if c.choices]
        else:
            helpers = chat if variant == "helper" else client.beta.chat.completions
            with helpers.stream(**options) as helper:
                text = [helper.get_final_completion().choices[0].message.content]
    assert "".join(t or "" for t in text) == "The capital is Paris."
    (answer,) = answers(run_events(ingest, dt))
    assert answer["prompt_tokens"] == 21 and answer["completion_tokens"] == 8
    assert answer["finish_reason"] == "stop"


async def test_async_streaming_response_and_responses_stream_report_tokens(dt: Dunetrace, ingest: IngestServer) -> None:
    fake = FakeOpenAI().reply(sse(chat_chunks(PIECES)), sse(response_events(["Paris."]), named=True))
    client = dt.wrap_openai(async_client(fake))
    async with dt.run("geo"):
        async with client.chat.completions.with_streaming_response.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options=USAGE
        ) as response:
            async for _ in await response.parse():
                pass
        async with client.responses.stream(model="gpt-4.1", input="Capital of France?") as events:
            await events.get_final_response()
    chat, responses = answers(run_events(ingest, dt))
    assert chat["prompt_tokens"] == 21 and chat["completion_tokens"] == 8
    assert responses["prompt_tokens"] == 36 and responses["completion_tokens"] == 87


def test_a_streaming_response_never_read_is_answered_by_its_runs_end(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(sse(chat_chunks(PIECES)))))
    with dt.run("geo"):
        manager = client.chat.completions.with_streaming_response.create(model=MODEL, messages=MESSAGES, stream=True)
        response = manager.__enter__()
    (answer,) = answers(run_events(ingest, dt))
    assert answer["finish_reason"] == "abandoned"
    response.close()
