"""Chat Completions through a wrapped OpenAI client: whole, streamed, sync
and async, against the real openai SDK on an httpx.MockTransport."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from dunetrace import Dunetrace
from dunetrace.hashing import Hasher
from tests.ingest_server import IngestServer

from .fakes import MODEL, FakeOpenAI, async_client, chat_chunks, chat_completion, sse, sync_client, tool_call

MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}]


def sha(text: str) -> str:
    """The output hash the run sends for ``text`` (no hash key)."""
    digest = Hasher().value(text)
    assert digest is not None
    return digest


def llm_events(ingest: IngestServer, dt: Dunetrace) -> list[dict[str, Any]]:
    assert dt.flush(5)
    return [e for e in ingest.events if e["event_type"].startswith("llm.") or e["event_type"] == "external.signal"]


def test_create_reports_model_tokens_finish_reason_and_output(dt: Dunetrace, ingest: IngestServer) -> None:
    fake = FakeOpenAI().reply(chat_completion("The capital of France is Paris."))
    client = dt.wrap_openai(sync_client(fake))
    with dt.run("geo", user_input="Capital of France?"):
        result = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert result.choices[0].message.content == "The capital of France is Paris."

    called, responded = llm_events(ingest, dt)
    assert called["event_type"] == "llm.called"
    assert called["payload"]["model"] == MODEL
    assert responded["event_type"] == "llm.responded"
    assert responded["step_index"] == called["step_index"] == 1
    payload = responded["payload"]
    assert payload["prompt_tokens"] == 21
    assert payload["completion_tokens"] == 8
    assert payload["finish_reason"] == "stop"
    assert payload["output_length"] == len("The capital of France is Paris.")
    assert payload["output_hash"] == sha("The capital of France is Paris.")
    assert 0 <= payload["latency_ms"] < 5000


def test_tool_call_response_is_tool_calls_with_hashed_arguments(dt: Dunetrace, ingest: IngestServer) -> None:
    fake = FakeOpenAI().reply(
        chat_completion(None, finish_reason="tool_calls", tool_calls=[tool_call("get_weather", '{"city": "Paris"}')])
    )
    client = dt.wrap_openai(sync_client(fake))
    with dt.run("weather"):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, tools=[])
    _, responded = llm_events(ingest, dt)
    assert responded["payload"]["finish_reason"] == "tool_calls"
    assert responded["payload"]["output_length"] == len('{"city":"Paris"}')


def test_length_finish_reason_passes_through(dt: Dunetrace, ingest: IngestServer) -> None:
    fake = FakeOpenAI().reply(chat_completion("The capital", finish_reason="length"))
    client = dt.wrap_openai(sync_client(fake))
    with dt.run("geo"):
        client.chat.completions.create(model=MODEL, messages=MESSAGES, max_tokens=2)
    assert llm_events(ingest, dt)[1]["payload"]["finish_reason"] == "length"


async def test_async_create(dt: Dunetrace, ingest: IngestServer) -> None:
    fake = FakeOpenAI().reply(chat_completion("Paris."))
    client = dt.wrap_openai(async_client(fake))
    assert isinstance(client, openai.AsyncOpenAI)
    async with dt.run("geo"):
        result = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert result.choices[0].message.content == "Paris."
    called, responded = llm_events(ingest, dt)
    assert called["payload"]["model"] == MODEL
    assert responded["payload"]["output_hash"] == sha("Paris.")
    assert responded["payload"]["completion_tokens"] == 8


# -- streams --------------------------------------------------------------------


def _dump(chunks: list[Any]) -> list[dict[str, Any]]:
    return [c.model_dump() for c in chunks]


def test_stream_yields_the_same_chunks_and_reports_usage_at_the_end(dt: Dunetrace, ingest: IngestServer) -> None:
    body = sse(chat_chunks(["The capital", " is", " Paris."]))
    plain = sync_client(FakeOpenAI().reply(list(body)))
    expected = _dump(list(plain.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)))

    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(list(body))))
    with dt.run("geo"):
        stream = client.chat.completions.create(
            model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        assert isinstance(stream, openai.Stream)
        got = _dump(list(stream))
        assert dt.flush(5)
        # Reported when the stream ended, before the run did.
        assert [e["event_type"] for e in ingest.events][-1] == "llm.responded"
    assert got == expected

    _, responded = llm_events(ingest, dt)
    payload = responded["payload"]
    assert payload["finish_reason"] == "stop"
    assert payload["prompt_tokens"] == 21 and payload["completion_tokens"] == 8
    assert payload["output_hash"] == sha("The capital is Paris.")
    assert payload["output_length"] == len("The capital is Paris.")


def test_stream_is_not_read_ahead(dt: Dunetrace) -> None:
    """Each chunk reaches the consumer before the next one is produced:
    the wrapper holds nothing back and reads nothing early."""
    fake = FakeOpenAI().reply(sse(chat_chunks(["a", "b", "c"], usage=None)))
    client = dt.wrap_openai(sync_client(fake))
    with dt.run("geo"):
        for i, _ in enumerate(client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)):
            fake.log.append(f"consumed {i}")
    plain_fake = FakeOpenAI().reply(sse(chat_chunks(["a", "b", "c"], usage=None)))
    for i, _ in enumerate(sync_client(plain_fake).chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)):
        plain_fake.log.append(f"consumed {i}")
    assert fake.log == plain_fake.log
    assert fake.log.index("consumed 0") < fake.log.index("produced 2")


def test_stream_tool_call_hashes_like_the_whole_response(dt: Dunetrace, ingest: IngestServer) -> None:
    whole = chat_completion(None, finish_reason="tool_calls", tool_calls=[tool_call("search", '{"q": "paris"}')])
    streamed = sse(chat_chunks([], finish_reason="tool_calls", tool=("search", ['{"q": ', '"paris"}'])))
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(whole, streamed)))
    with dt.run("search"):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
        for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            pass
    events = [e for e in llm_events(ingest, dt) if e["event_type"] == "llm.responded"]
    assert [e["payload"]["finish_reason"] for e in events] == ["tool_calls", "tool_calls"]
    assert events[0]["payload"]["output_hash"] == events[1]["payload"]["output_hash"]
    assert events[0]["payload"]["output_length"] == events[1]["payload"]["output_length"]


def test_stream_closed_early_is_reported_at_close(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(sse(chat_chunks(["The capital", " is", " Paris."])))))
    with dt.run("geo"):
        with client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as stream:
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    break
        assert dt.flush(5)
        assert ingest.events[-1]["event_type"] == "llm.responded"
    _, responded = llm_events(ingest, dt)
    payload = responded["payload"]
    assert payload["finish_reason"] == "partial"  # its reader stopped before the API said
    assert payload["output_hash"] == sha("The capital")
    assert payload["output_length"] == len("The capital")


def test_stream_dropped_without_close_is_reported_once(dt: Dunetrace, ingest: IngestServer) -> None:
    import gc

    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(sse(chat_chunks(["a", "b"])))))
    with dt.run("geo"):
        stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        next(iter(stream))
        del stream
        gc.collect()
    kinds = [e["event_type"] for e in llm_events(ingest, dt)]
    assert kinds == ["llm.called", "llm.responded"]


def test_stream_error_midway_reaches_caller_and_is_an_api_error(dt: Dunetrace, ingest: IngestServer) -> None:
    chunks = chat_chunks(["The capital"], usage=None)[:2]
    body = [*sse(chunks, done=False), b'data: {"error": {"message": "server overloaded", "type": "server_error"}}\n\n']
    plain = sync_client(FakeOpenAI().reply(list(body)))
    with pytest.raises(openai.APIError) as expected:
        list(plain.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True))

    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(list(body))))
    got: list[Any] = []
    with dt.run("geo"), pytest.raises(openai.APIError) as raised:
        for chunk in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
            got.append(chunk)
    assert type(raised.value) is type(expected.value) and str(raised.value) == str(expected.value)
    assert len(got) == 2
    _, responded, signal = llm_events(ingest, dt)
    assert responded["payload"]["finish_reason"] == "error"
    assert signal["payload"]["signal_name"] == "api_error"
    assert signal["payload"]["source"] == "openai"
    assert signal["payload"]["api_error_type"] == "server_error"
    assert "http_status" not in signal["payload"]  # the stream had started with a 200


def test_chat_completions_stream_helper_is_reported_once(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(sse(chat_chunks(["Paris", "."])))))
    with dt.run("geo"), client.chat.completions.stream(model=MODEL, messages=MESSAGES) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "Paris."
    _called, responded = llm_events(ingest, dt)
    assert responded["payload"]["output_hash"] == sha("Paris.")
    assert responded["payload"]["finish_reason"] == "stop"


async def test_async_stream_full_and_closed_early(dt: Dunetrace, ingest: IngestServer) -> None:
    body = sse(chat_chunks(["The capital", " is", " Paris."]))
    client = dt.wrap_openai(async_client(FakeOpenAI().reply(list(body), list(body))))
    async with dt.run("geo"):
        stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        assert isinstance(stream, openai.AsyncStream)
        texts = [c.choices[0].delta.content async for c in stream if c.choices]
        async with await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True) as second:
            async for chunk in second:
                if chunk.choices and chunk.choices[0].delta.content:
                    break
        assert dt.flush(5)
        assert ingest.events[-1]["event_type"] == "llm.responded"
    assert "".join(t for t in texts if t) == "The capital is Paris."
    responded = [e for e in llm_events(ingest, dt) if e["event_type"] == "llm.responded"]
    assert [e["step_index"] for e in responded] == [1, 2]
    assert responded[0]["payload"]["completion_tokens"] == 8
    assert responded[0]["payload"]["output_hash"] == sha("The capital is Paris.")
    assert responded[1]["payload"]["output_hash"] == sha("The capital")


def test_raw_response_is_reported_and_parse_still_works(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(chat_completion("Paris."))))
    with dt.run("geo"):
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
        assert raw.headers["x-request-id"] == "req_1"
        assert raw.parse().choices[0].message.content == "Paris."
    _, responded = llm_events(ingest, dt)
    assert responded["payload"]["output_hash"] == sha("Paris.")
    assert json.loads(raw.http_response.content)["usage"]["prompt_tokens"] == 21


def test_structured_output_parse_is_reported(dt: Dunetrace, ingest: IngestServer) -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str
        country: str

    answer = '{"name": "Paris", "country": "France"}'
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(chat_completion(answer))))
    with dt.run("geo"):
        parsed = client.chat.completions.parse(model=MODEL, messages=MESSAGES, response_format=City)
    assert parsed.choices[0].message.parsed == City(name="Paris", country="France")
    _, responded = llm_events(ingest, dt)
    assert responded["payload"]["output_hash"] == sha(answer)
    assert responded["payload"]["prompt_tokens"] == 21
