"""LangChain ``Embeddings`` wrapped with ``report_embeddings``: each
embedding call inside a run is an ``EMBEDDING`` signal with the model, the
number of texts and the latency (a vector store's retriever in an agent's
tool, sync and async, and a retriever invoked alone); the texts never leave
the process, and calls outside a run are not reported."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings
from langchain_core.tools import tool
from langchain_core.vectorstores import InMemoryVectorStore

from dunetrace import Dunetrace
from dunetrace.integrations.langchain import DunetraceCallbackHandler, ReportedEmbeddings, report_embeddings

from .conftest import delivered, well_formed
from .fakes import agent, call, question

SECRET = "sentinel-embedded-text-7781"


def embedding_signals(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e["payload"]
        for e in events
        if e["event_type"] == "external.signal" and e["payload"]["signal_name"] == "EMBEDDING"
    ]


def store_with(texts: list[str]) -> tuple[ReportedEmbeddings, InMemoryVectorStore]:
    embeddings = report_embeddings(DeterministicFakeEmbedding(size=16))
    store = InMemoryVectorStore(embeddings)
    store.add_texts(texts)  # outside any run: not reported
    return embeddings, store


@pytest.mark.parametrize("asynchronous", [False, True], ids=["invoke", "ainvoke"])
def test_a_retriever_in_an_agent_tool(
    asynchronous: bool, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    _, store = store_with(["Paris is sunny", "Oslo is cold", SECRET])
    retriever = store.as_retriever(search_kwargs={"k": 2})

    @tool
    async def lookup(query: str) -> str:
        """Look the weather up."""
        return " ".join(d.page_content for d in await retriever.ainvoke(query))

    @tool
    def lookup_sync(query: str) -> str:
        """Look the weather up."""
        return " ".join(d.page_content for d in retriever.invoke(query))

    chosen = lookup if asynchronous else lookup_sync
    graph = agent([[call(chosen.name, query=SECRET)], "Sunny."], [chosen])
    config: Any = {"callbacks": [handler]}
    if asynchronous:
        asyncio.run(graph.ainvoke(question(), config=config))
    else:
        graph.invoke(question(), config=config)
    events = delivered(dt, ingest)
    well_formed([e for e in events if e["event_type"] != "external.signal"])
    (signal,) = embedding_signals(events)
    assert signal["source"] == "langchain"
    assert signal["model"] == "DeterministicFakeEmbedding"
    assert signal["input_count"] == 1 and signal["success"] is True
    assert signal["latency_ms"] >= 0
    # Inside the retrieval that made it, at its step.
    kinds = [e["event_type"] for e in events]
    at = kinds.index("external.signal")
    assert kinds[at - 1] == "retrieval.called" and kinds[at + 1] == "retrieval.responded"
    assert events[at]["step_index"] == events[at - 1]["step_index"]
    assert SECRET.encode() not in ingest.raw()


def test_documents_embedded_inside_a_run_and_outside(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    embeddings, store = store_with(["one"])
    with dt.run("indexer", model="none") as run:
        store.add_texts(["two", "three", "four"])
        embeddings.embed_query("five")
        run.final_answer()
    embeddings.embed_documents(["after the run"])
    signals = embedding_signals(delivered(dt, ingest))
    assert [(s["input_count"], s["model"]) for s in signals] == [
        (3, "DeterministicFakeEmbedding"),
        (1, "DeterministicFakeEmbedding"),
    ]


def test_a_failing_embedding_call_is_reported_and_raised(dt: Dunetrace, ingest: Any) -> None:
    class Down(Embeddings):
        model = "text-embedding-3-small"

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            raise ConnectionError("embedding API unreachable")

        def embed_query(self, text: str) -> list[float]:
            raise ConnectionError("embedding API unreachable")

    embeddings = report_embeddings(Down())
    with dt.run("indexer") as run, pytest.raises(ConnectionError):
        embeddings.embed_documents(["a", "b"])
    assert run.finished
    (signal,) = embedding_signals(delivered(dt, ingest))
    assert (signal["model"], signal["input_count"], signal["success"]) == ("text-embedding-3-small", 2, False)


def test_the_wrapper_is_the_embeddings_object_it_wraps() -> None:
    inner = DeterministicFakeEmbedding(size=4)
    wrapped = report_embeddings(inner, model="fake-4")
    assert wrapped.embed_query("x") == inner.embed_query("x")
    assert wrapped.size == 4  # the wrapped object's own settings stay readable
    assert wrapped.model == "fake-4"
    assert report_embeddings(wrapped) is wrapped
    with pytest.raises(TypeError, match="Embeddings object"):
        report_embeddings("not embeddings")  # type: ignore[arg-type]


@given(st.one_of(st.none(), st.text(), st.integers(), st.lists(st.text(), max_size=2)))
def test_model_names_are_checked_at_the_boundary(model: Any) -> None:
    inner = DeterministicFakeEmbedding(size=2)
    if model is None or (isinstance(model, str) and model):
        assert report_embeddings(inner, model=model).model == (model or "DeterministicFakeEmbedding")
    else:
        with pytest.raises(ValueError, match="model"):
            report_embeddings(inner, model=model)
