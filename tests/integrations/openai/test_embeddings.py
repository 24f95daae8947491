"""``embeddings.create`` through a wrapped client: an EMBEDDING external
signal with model, input count, latency and prompt tokens; never the texts,
never an LLM call."""

from __future__ import annotations

from typing import Any

import openai
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dunetrace import Dunetrace
from dunetrace.integrations.openai.embeddings import input_count
from tests.ingest_server import IngestServer

from .fakes import FakeOpenAI, async_client, sync_client

EMBED_MODEL = "text-embedding-3-small"
SECRET = "the customer's card ends 4242"


def embedding_response(count: int, prompt_tokens: int = 8) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": [0.1, -0.2, 0.3]} for i in range(count)],
        "model": EMBED_MODEL,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }


def signals(ingest: IngestServer, dt: Dunetrace) -> list[dict[str, Any]]:
    assert dt.flush(5)
    assert not [e for e in ingest.events if e["event_type"].startswith("llm.")]  # not an LLM call
    return [e["payload"] for e in ingest.events if e["event_type"] == "external.signal"]


def test_create_is_an_embedding_signal_without_the_texts(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(embedding_response(3, prompt_tokens=17))))
    with dt.run("rag"):
        result = client.embeddings.create(model=EMBED_MODEL, input=[SECRET, "b", "c"])
    assert len(result.data) == 3
    (signal,) = signals(ingest, dt)
    assert signal["signal_name"] == "EMBEDDING" and signal["source"] == "openai"
    assert signal["model"] == EMBED_MODEL and signal["input_count"] == 3 and signal["input_tokens"] == 17
    assert signal["success"] is True and 0 <= signal["latency_ms"] < 5000
    assert SECRET not in str(ingest.events)


async def test_async_create(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(async_client(FakeOpenAI().reply(embedding_response(1))))
    async with dt.run("rag"):
        await client.embeddings.create(model=EMBED_MODEL, input="one text")
    (signal,) = signals(ingest, dt)
    assert (signal["input_count"], signal["input_tokens"]) == (1, 8)


def test_raw_and_streaming_response_views(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(embedding_response(2), embedding_response(2))))
    with dt.run("rag"):
        raw = client.embeddings.with_raw_response.create(model=EMBED_MODEL, input=["a", "b"])
        assert len(raw.parse().data) == 2
        with client.embeddings.with_streaming_response.create(model=EMBED_MODEL, input=["a", "b"]) as response:
            assert len(response.parse().data) == 2
    parsed, streamed = signals(ingest, dt)
    assert parsed["input_tokens"] == 8 and parsed["input_count"] == 2
    assert "input_tokens" not in streamed and streamed["input_count"] == 2  # its body is the caller's


async def test_async_raw_response(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(async_client(FakeOpenAI().reply(embedding_response(2))))
    async with dt.run("rag"):
        raw = await client.embeddings.with_raw_response.create(model=EMBED_MODEL, input=["a", "b"])
    assert len(raw.parse().data) == 2
    (signal,) = signals(ingest, dt)
    assert signal["input_tokens"] == 8


def test_a_failed_embedding_is_unsuccessful_with_its_http_status(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(500)))
    with dt.run("rag"), pytest.raises(openai.InternalServerError):
        client.embeddings.create(model=EMBED_MODEL, input=["a"])
    embedding, error = signals(ingest, dt)
    assert embedding["signal_name"] == "EMBEDDING" and embedding["success"] is False
    assert error["signal_name"] == "api_error" and error["http_status"] == 500
    assert error["error_type"] == "InternalServerError"


def test_outside_a_run_nothing_is_sent(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(embedding_response(1))))
    client.embeddings.create(model=EMBED_MODEL, input="a")
    assert dt.flush(5)
    assert ingest.events == []


@given(
    st.one_of(
        st.text(),
        st.lists(st.text(), max_size=20),
        st.lists(st.integers(0, 100_000), min_size=1, max_size=20),
        st.lists(st.lists(st.integers(0, 100_000), min_size=1, max_size=5), max_size=20),
    )
)
def test_input_count_of_every_input_shape(value: Any) -> None:
    expected = 1 if isinstance(value, str) or (value and isinstance(value[0], int)) else len(value)
    assert input_count(value) == expected


def test_an_iterator_input_is_not_counted_nor_used_up() -> None:
    texts = iter(["a", "b"])
    assert input_count(texts) is None
    assert list(texts) == ["a", "b"]
