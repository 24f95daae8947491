"""Streamed answers whose reader stops early or never reads, on real
llama-index-core 0.14 engines: the stream's LLM call is answered before
the run's terminal event, never after it and never not at all."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding

from dunetrace.exit_reasons import ABANDONED, FINAL_ANSWER
from dunetrace.integrations.llamaindex import uninstrument

from .fakes import ScriptedLLM
from .recorded import by_run, only, types, well_formed


@pytest.fixture
def index() -> VectorStoreIndex:
    documents = [Document(text="Oslo is in Norway."), Document(text="Lima is in Peru.")]
    return VectorStoreIndex.from_documents(documents, embed_model=MockEmbedding(embed_dim=8))


def answered_then_ended(events: list[dict[str, Any]]) -> dict[str, Any]:
    well_formed(events)
    assert types(events)[-3:] == ["llm.called", "llm.responded", "run.completed"]
    return only(events, "llm.responded")[0]["payload"]


def test_a_query_stream_closed_early_answers_its_call_as_partial(
    index: VectorStoreIndex, instrumented: Any, received: Any
) -> None:
    engine = index.as_query_engine(llm=ScriptedLLM(["Oslo is a city in Norway."]), streaming=True)
    response = engine.query("where is Oslo?")
    tokens = response.response_gen
    next(tokens)
    tokens.close()
    (events,) = by_run(received()).values()
    assert answered_then_ended(events)["finish_reason"] == "partial"
    assert events[-1]["payload"]["exit_reason"] == FINAL_ANSWER
    assert len(instrumented.translator._runs) == 0 and instrumented.translator._llm == {}


async def test_an_async_query_stream_closed_early_answers_its_call_as_partial(
    index: VectorStoreIndex, instrumented: Any, received: Any
) -> None:
    engine = index.as_query_engine(llm=ScriptedLLM(["Lima is a city in Peru."]), streaming=True)
    response = await engine.aquery("where is Lima?")
    tokens = response.async_response_gen()
    await tokens.__anext__()
    await tokens.aclose()
    # llama-index-core 0.14 reads the relayed stream through nested async
    # generators that closing the outer one does not close: asyncio closes
    # them (and so ends the run) once the response is let go of.
    del response, tokens
    for _ in range(50):
        if "run.completed" in types(received()):
            break
        await asyncio.sleep(0.01)
    (events,) = by_run(received()).values()
    assert answered_then_ended(events)["finish_reason"] == "partial"
    assert len(instrumented.translator._runs) == 0 and instrumented.translator._llm == {}


def test_a_query_stream_read_to_the_end_is_a_whole_answer(
    index: VectorStoreIndex, instrumented: Any, received: Any
) -> None:
    engine = index.as_query_engine(llm=ScriptedLLM(["Oslo is a city in Norway."]), streaming=True)
    assert "".join(engine.query("where is Oslo?").response_gen) == "Oslo is a city in Norway."
    (events,) = by_run(received()).values()
    assert answered_then_ended(events)["finish_reason"] == "stop"


def test_a_query_stream_never_read_ends_abandoned_at_uninstrument(
    index: VectorStoreIndex, instrumented: Any, received: Any
) -> None:
    engine = index.as_query_engine(llm=ScriptedLLM(["Lima is in Peru."]), streaming=True)
    engine.query("where is Lima?")  # never read: LlamaIndex never calls the LLM
    assert "run.completed" not in types(received())  # the run waits for its reader
    uninstrument()
    (events,) = by_run(received()).values()
    well_formed(events)
    assert only(events, "llm.called") == []
    assert events[-1]["payload"]["exit_reason"] == ABANDONED


def test_a_query_stream_abandoned_mid_read_answers_its_call_before_the_end(
    index: VectorStoreIndex, instrumented: Any, received: Any
) -> None:
    engine = index.as_query_engine(llm=ScriptedLLM(["Oslo is a city in Norway."]), streaming=True)
    tokens = engine.query("where is Oslo?").response_gen
    next(tokens)  # the LLM call is in flight; the reader walks away
    uninstrument()
    (events,) = by_run(received()).values()
    assert answered_then_ended(events)["finish_reason"] == ABANDONED
    assert events[-1]["payload"]["exit_reason"] == ABANDONED
    tokens.close()
    assert types(received())[-1] == "run.completed"  # nothing after the terminal
