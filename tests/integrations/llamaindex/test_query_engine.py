"""A VectorStoreIndex with MockEmbedding, queried through real query and chat
engines: one run each, with its retrieval and its LLM call."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM

from dunetrace import Dunetrace, get_current_run

from .fakes import ScriptedLLM
from .recorded import by_run, only, types, well_formed

DOCS = ["Paris is the capital of France.", "Oslo is in Norway.", "Lima is in Peru."]


@pytest.fixture
def index() -> VectorStoreIndex:
    return VectorStoreIndex.from_documents([Document(text=t) for t in DOCS], embed_model=MockEmbedding(embed_dim=8))


def check_rag_run(events: list[dict[str, Any]], answer: str) -> None:
    well_formed(events)
    assert types(events) == [
        "run.started",
        "retrieval.called",
        "external.signal",  # EMBEDDING: the query embedded
        "retrieval.responded",
        "llm.called",
        "llm.responded",
        "run.completed",
    ]
    assert events[0]["agent_id"] == "li-agent" and "input_hash" in events[0]["payload"]
    called, responded = only(events, "retrieval.called")[0], only(events, "retrieval.responded")[0]
    assert called["payload"]["index_name"] == "VectorIndexRetriever" and len(called["payload"]["query_hash"]) == 64
    assert responded["payload"]["result_count"] == 2
    # MockEmbedding gives every text the same vector: cosine similarity 1.
    assert responded["payload"]["top_score"] == pytest.approx(1.0)
    assert responded["payload"]["latency_ms"] >= 0
    llm = only(events, "llm.responded")[0]["payload"]
    assert llm["output_length"] == len(answer)
    assert llm["finish_reason"] == "stop" and llm["completion_tokens"] == len(answer.split())
    assert events[-1]["payload"]["exit_reason"] == "final_answer"


def test_query_engine_run(index: VectorStoreIndex, instrumented: Any, received: Any) -> None:
    engine = index.as_query_engine(llm=ScriptedLLM(["Paris."]), similarity_top_k=2)
    assert str(engine.query("capital of France?")) == "Paris."
    (events,) = by_run(received()).values()
    check_rag_run(events, "Paris.")


async def test_async_query_engine_run(index: VectorStoreIndex, instrumented: Any, received: Any) -> None:
    engine = index.as_query_engine(llm=ScriptedLLM(["Paris."]), similarity_top_k=2)
    assert str(await engine.aquery("capital of France?")) == "Paris."
    (events,) = by_run(received()).values()
    check_rag_run(events, "Paris.")


async def test_nested_llm_calls_count_once(index: VectorStoreIndex, instrumented: Any, received: Any) -> None:
    # MockLLM.acomplete calls complete: two nested LLM spans, one logical call.
    engine = index.as_query_engine(llm=MockLLM(max_tokens=4), similarity_top_k=2)
    await engine.aquery("capital of France?")
    (events,) = by_run(received()).values()
    well_formed(events)
    assert len(only(events, "llm.called")) == 1
    assert only(events, "llm.called")[0]["payload"]["model"] == "MockLLM"


def test_streaming_chat_completes_when_the_stream_is_read(
    index: VectorStoreIndex, instrumented: Any, received: Any
) -> None:
    engine = index.as_chat_engine(chat_mode="context", llm=ScriptedLLM(["Oslo is in Norway."]), similarity_top_k=2)
    # stream_chat returns before the LLM is called; a thread writes the
    # stream out, under a span whose parent (stream_chat) has already exited.
    response = engine.stream_chat("where is Oslo?")
    text = "".join(response.response_gen)
    assert text == "Oslo is in Norway."
    (events,) = by_run(received()).values()
    check_rag_run(events, text)
    assert len(instrumented.translator._runs) == 0 and instrumented.translator._spans == {}


async def test_async_streaming_chat_completes_when_the_stream_is_read(
    index: VectorStoreIndex, instrumented: Any, received: Any
) -> None:
    engine = index.as_chat_engine(chat_mode="context", llm=ScriptedLLM(["Oslo is in Norway."]), similarity_top_k=2)
    response = await engine.astream_chat("where is Oslo?")
    text = "".join([token async for token in response.async_response_gen()])
    assert text == "Oslo is in Norway."
    (events,) = by_run(received()).values()
    check_rag_run(events, text)
    assert len(instrumented.translator._runs) == 0 and instrumented.translator._spans == {}


def test_streaming_query_engine_run_ends_with_its_stream(
    dt: Dunetrace, index: VectorStoreIndex, instrumented: Any, received: Any
) -> None:
    # llama-index-core 0.14 starts a streaming query engine's LLM call only
    # when the caller reads the stream, with no link to the query's span:
    # the run stays open through the stream and takes that call.
    engine = index.as_query_engine(llm=ScriptedLLM(["Oslo."], repeat=True), similarity_top_k=2, streaming=True)
    response = engine.query("where is Oslo?")
    assert get_current_run() is None  # nothing leaks into the caller
    assert "".join(response.response_gen) == "Oslo."
    assert get_current_run() is None
    (events,) = by_run(received()).values()
    well_formed(events)
    assert types(events) == [
        "run.started",
        "retrieval.called",
        "external.signal",  # EMBEDDING: the query embedded
        "retrieval.responded",
        "llm.called",
        "llm.responded",
        "run.completed",
    ]
    # Inside the caller's own run, the events join it.
    with dt.run("my-app"):
        assert "".join(engine.query("where is Oslo?").response_gen) == "Oslo."
    mine = [e for e in received() if e["agent_id"] == "my-app"]
    well_formed(mine)
    assert types(mine) == [
        "run.started",
        "retrieval.called",
        "external.signal",  # EMBEDDING: the query embedded
        "retrieval.responded",
        "llm.called",
        "llm.responded",
        "run.completed",
    ]
    assert len(instrumented.translator._runs) == 0 and instrumented.translator._spans == {}


async def test_async_streaming_query_engine_run_ends_with_its_stream(
    index: VectorStoreIndex, instrumented: Any, received: Any
) -> None:
    engine = index.as_query_engine(llm=ScriptedLLM(["Lima."], repeat=True), similarity_top_k=2, streaming=True)
    response = await engine.aquery("where is Lima?")
    assert "".join([token async for token in response.async_response_gen()]) == "Lima."
    (events,) = by_run(received()).values()
    well_formed(events)
    assert types(events) == [
        "run.started",
        "retrieval.called",
        "external.signal",  # EMBEDDING: the query embedded
        "retrieval.responded",
        "llm.called",
        "llm.responded",
        "run.completed",
    ]


def test_streaming_query_engine_stream_closed_early_ends_the_run(
    index: VectorStoreIndex, instrumented: Any, received: Any
) -> None:
    engine = index.as_query_engine(
        llm=ScriptedLLM(["Oslo is a city."], repeat=True), similarity_top_k=2, streaming=True
    )
    response = engine.query("where is Oslo?")
    next(iter(response.response_gen))
    response.response_gen.close()
    (events,) = by_run(received()).values()
    assert types(events)[-1] == "run.completed"


def test_chat_engine_run(index: VectorStoreIndex, instrumented: Any, received: Any) -> None:
    engine = index.as_chat_engine(chat_mode="context", llm=ScriptedLLM(["Lima is in Peru."]), similarity_top_k=2)
    assert str(engine.chat("where is Lima?")) == "Lima is in Peru."
    (events,) = by_run(received()).values()
    well_formed(events)
    assert types(events) == [
        "run.started",
        "retrieval.called",
        "external.signal",  # EMBEDDING: the query embedded
        "retrieval.responded",
        "llm.called",
        "llm.responded",
        "run.completed",
    ]


def test_work_outside_any_run_is_not_reported(index: VectorStoreIndex, instrumented: Any, received: Any) -> None:
    # Building an index and a bare retriever call are not agent runs.
    VectorStoreIndex.from_documents([Document(text="x")], embed_model=MockEmbedding(embed_dim=8))
    index.as_retriever().retrieve("paris")
    assert received() == []
    assert instrumented.translator._spans == {}
