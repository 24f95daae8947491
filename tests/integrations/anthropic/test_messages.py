"""Messages through a wrapped Anthropic client: create (whole and
streamed), messages.stream, sync and async, with the stop reason mapped."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest

from dunetrace import Dunetrace
from dunetrace.hashing import Hasher
from tests.ingest_server import IngestServer

from .fakes import MODEL, FakeAnthropic, async_client, message, sse, stream_events, sync_client

MESSAGES = [{"role": "user", "content": "Capital of France?"}]


def sha(text: str) -> str:
    """The output hash the run sends for ``text`` (no hash key)."""
    digest = Hasher().value(text)
    assert digest is not None
    return digest


def llm_events(ingest: IngestServer, dt: Dunetrace) -> list[dict[str, Any]]:
    assert dt.flush(5)
    return [e for e in ingest.events if e["event_type"].startswith("llm.") or e["event_type"] == "external.signal"]


def responded(ingest: IngestServer, dt: Dunetrace) -> list[dict[str, Any]]:
    return [e["payload"] for e in llm_events(ingest, dt) if e["event_type"] == "llm.responded"]


def test_create_reports_everything(dt: Dunetrace, ingest: IngestServer) -> None:
    usage = {"input_tokens": 5, "output_tokens": 9, "cache_creation_input_tokens": 100, "cache_read_input_tokens": 20}
    client = dt.wrap_anthropic(sync_client(FakeAnthropic().reply(message("Paris.", usage=usage))))
    assert type(client) is anthropic.Anthropic
    with dt.run("geo"):
        result = client.messages.create(model=MODEL, max_tokens=100, system="Be brief.", messages=MESSAGES)
    assert result.content[0].text == "Paris."
    called, done = llm_events(ingest, dt)
    assert called["payload"]["model"] == MODEL
    assert done["step_index"] == called["step_index"]
    payload = done["payload"]
    assert payload["prompt_tokens"] == 125  # cached prompt tokens count too
    assert payload["completion_tokens"] == 9
    assert payload["finish_reason"] == "stop"
    assert payload["output_hash"] == sha("Paris.")
    assert payload["output_length"] == 6


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("pause_turn", "pause_turn"),
    ],
)
def test_stop_reason_mapping(dt: Dunetrace, ingest: IngestServer, stop_reason: str, finish_reason: str) -> None:
    client = dt.wrap_anthropic(sync_client(FakeAnthropic().reply(message("x", stop_reason=stop_reason))))
    with dt.run("geo"):
        client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert responded(ingest, dt)[0]["finish_reason"] == finish_reason


def test_create_stream_same_events_and_usage(dt: Dunetrace, ingest: IngestServer) -> None:
    body = sse(stream_events(["Paris", " is", " the capital."]))
    expected = [
        e.model_dump()
        for e in sync_client(FakeAnthropic().reply(list(body))).messages.create(
            model=MODEL, max_tokens=100, messages=MESSAGES, stream=True
        )
    ]
    client = dt.wrap_anthropic(sync_client(FakeAnthropic().reply(list(body))))
    with dt.run("geo"):
        got = [
            e.model_dump() for e in client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
        ]
    assert got == expected
    (payload,) = responded(ingest, dt)
    assert payload["prompt_tokens"] == 25 and payload["completion_tokens"] == 9
    assert payload["finish_reason"] == "stop"
    assert payload["output_hash"] == sha("Paris is the capital.")


def test_messages_stream_helper_and_early_close(dt: Dunetrace, ingest: IngestServer) -> None:
    body = sse(stream_events(["Paris", " is", " the capital."], stop_reason="max_tokens"))
    client = dt.wrap_anthropic(sync_client(FakeAnthropic().reply(list(body), list(body))))
    with dt.run("geo"):
        with client.messages.stream(model=MODEL, max_tokens=3, messages=MESSAGES) as stream:
            assert "".join(stream.text_stream) == "Paris is the capital."
        with client.messages.stream(model=MODEL, max_tokens=3, messages=MESSAGES) as stream:
            for event in stream:
                if event.type == "text":
                    break
        assert dt.flush(5)
        assert ingest.events[-1]["event_type"] == "llm.responded"  # at close, before the run ends
    whole, early = responded(ingest, dt)
    assert whole["finish_reason"] == "length"
    assert whole["output_hash"] == sha("Paris is the capital.")
    assert early["prompt_tokens"] == 25
    assert early["finish_reason"] == "partial"  # its reader stopped before the API said
    assert early["output_hash"] == sha("Paris")


def test_tool_use_streamed_hashes_like_the_whole_message(dt: Dunetrace, ingest: IngestServer) -> None:
    whole = message("Let me check.", stop_reason="tool_use", tool=("get_weather", {"city": "Paris", "unit": "c"}))
    streamed = sse(
        stream_events(
            ["Let me check."], stop_reason="tool_use", tool=("get_weather", ['{"city": "Pa', 'ris", "unit"', ': "c"}'])
        )
    )
    client = dt.wrap_anthropic(sync_client(FakeAnthropic().reply(whole, streamed)))
    with dt.run("weather", tools=["get_weather"]):
        client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        with client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
            final = stream.get_final_message()
    assert final.content[1].input == {"city": "Paris", "unit": "c"}
    first, second = responded(ingest, dt)
    assert first["finish_reason"] == second["finish_reason"] == "tool_calls"
    assert first["output_hash"] == second["output_hash"]
    assert first["output_length"] == second["output_length"]


async def test_async_create_stream_and_helper(dt: Dunetrace, ingest: IngestServer) -> None:
    body = sse(stream_events(["Paris", "."]))
    client = dt.wrap_anthropic(async_client(FakeAnthropic().reply(message("Paris."), list(body), list(body))))
    assert type(client) is anthropic.AsyncAnthropic
    async with dt.run("geo"):
        await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        stream = await client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES, stream=True)
        assert isinstance(stream, anthropic.AsyncStream)
        async for _ in stream:
            pass
        async with client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as helper:
            text = await helper.get_final_text()
    assert text == "Paris."
    payloads = responded(ingest, dt)
    assert [p["output_hash"] for p in payloads] == [sha("Paris.")] * 3
    assert [p["finish_reason"] for p in payloads] == ["stop"] * 3
    assert payloads[2]["completion_tokens"] == 9


def test_structured_output_parse_is_reported(dt: Dunetrace, ingest: IngestServer) -> None:
    from pydantic import BaseModel

    class City(BaseModel):
        name: str

    client = dt.wrap_anthropic(sync_client(FakeAnthropic().reply(message('{"name": "Paris"}'))))
    with dt.run("geo"):
        parsed = client.messages.parse(model=MODEL, max_tokens=100, messages=MESSAGES, output_format=City)
    assert parsed.parsed_output == City(name="Paris")
    (payload,) = responded(ingest, dt)
    assert payload["output_hash"] == sha('{"name": "Paris"}')
    assert payload["finish_reason"] == "stop"
