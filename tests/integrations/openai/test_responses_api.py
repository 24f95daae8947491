"""The Responses API through a wrapped OpenAI client, whole and streamed."""

from __future__ import annotations

from dunetrace import Dunetrace
from dunetrace.hashing import Hasher
from tests.ingest_server import IngestServer

from .fakes import FakeOpenAI, async_client, response_events, response_object, sse, sync_client


def sha(text: str) -> str:
    """The output hash the run sends for ``text`` (no hash key)."""
    digest = Hasher().value(text)
    assert digest is not None
    return digest


def responded(ingest: IngestServer, dt: Dunetrace) -> list[dict]:
    assert dt.flush(5)
    return [e["payload"] for e in ingest.events if e["event_type"] == "llm.responded"]


def test_create_reports_usage_and_status(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(response_object("Paris is the capital."))))
    with dt.run("geo"):
        result = client.responses.create(model="gpt-4.1", instructions="Be brief.", input="Capital of France?")
    assert result.output_text == "Paris is the capital."
    assert dt.flush(5)
    called = next(e for e in ingest.events if e["event_type"] == "llm.called")
    assert called["payload"]["model"] == "gpt-4.1"
    (payload,) = responded(ingest, dt)
    assert payload["prompt_tokens"] == 36 and payload["completion_tokens"] == 87
    assert payload["finish_reason"] == "stop"
    assert payload["output_hash"] == sha("Paris is the capital.")


def test_function_call_and_incomplete(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(
        sync_client(
            FakeOpenAI().reply(
                response_object("", function_call=("get_weather", '{"city":"Paris"}')),
                response_object("Par", status="incomplete", incomplete_reason="max_output_tokens"),
            )
        )
    )
    with dt.run("weather"):
        client.responses.create(model="gpt-4.1", input=[{"role": "user", "content": "Weather?"}])
        client.responses.create(model="gpt-4.1", input="again", max_output_tokens=1)
    first, second = responded(ingest, dt)
    assert first["finish_reason"] == "tool_calls"
    assert first["output_length"] == len('{"city":"Paris"}')
    assert second["finish_reason"] == "length"


def test_stream_reports_from_the_completed_event(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(sse(response_events(["Par", "is."]), named=True))))
    with dt.run("geo"):
        deltas = [
            e.delta
            for e in client.responses.create(model="gpt-4.1", input="Capital?", stream=True)
            if e.type == "response.output_text.delta"
        ]
    assert deltas == ["Par", "is."]
    (payload,) = responded(ingest, dt)
    assert payload["finish_reason"] == "stop"
    assert payload["completion_tokens"] == 87
    assert payload["output_hash"] == sha("Paris.")


async def test_async_stream_helper(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(async_client(FakeOpenAI().reply(sse(response_events(["Par", "is."]), named=True))))
    async with dt.run("geo"), client.responses.stream(model="gpt-4.1", input="Capital?") as stream:
        final = await stream.get_final_response()
    assert final.output_text == "Paris."
    (payload,) = responded(ingest, dt)
    assert payload["prompt_tokens"] == 36
    assert payload["output_hash"] == sha("Paris.")
