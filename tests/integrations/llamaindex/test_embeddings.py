"""LlamaIndex embeddings inside a run (llama-index-core 0.14
``EmbeddingStart/EndEvent``): each is an ``external.signal`` named
``EMBEDDING`` with model, input count and latency, source ``llamaindex``;
the texts are neither sent nor hashed."""

from __future__ import annotations

from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding

from dunetrace import Dunetrace

from .fakes import ScriptedLLM
from .recorded import by_run, only, well_formed

SECRET = "The vault code is 7431."


def embeddings(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["payload"] for e in only(events, "external.signal") if e["payload"]["signal_name"] == "EMBEDDING"]


def test_a_query_embedding_inside_a_run(instrumented: Any, received: Any) -> None:
    index = VectorStoreIndex.from_documents([Document(text=SECRET)], embed_model=MockEmbedding(embed_dim=8))
    assert received() == []  # building the index is outside any run
    engine = index.as_query_engine(llm=ScriptedLLM(["7431."]))
    assert str(engine.query("what is the vault code?")) == "7431."
    (events,) = by_run(received()).values()
    well_formed(events)
    (embedding,) = embeddings(events)
    assert embedding["source"] == "llamaindex" and embedding["model"] == "MockEmbedding"
    assert embedding["input_count"] == 1 and embedding["latency_ms"] >= 0 and embedding["success"] is True
    signal = only(events, "external.signal")[0]
    assert signal["step_index"] == only(events, "retrieval.called")[0]["step_index"]  # does not advance the step
    assert "vault" not in str(events)


async def test_embedding_documents_inside_the_callers_run(dt: Dunetrace, instrumented: Any, received: Any) -> None:
    documents = [Document(text=f"note {i}") for i in range(5)]
    async with dt.run("indexer", user_input="index the notes"):
        VectorStoreIndex.from_documents(documents, embed_model=MockEmbedding(embed_dim=8))
    (events,) = by_run(received()).values()
    well_formed(events)
    found = embeddings(events)
    assert sum(e["input_count"] for e in found) == 5
    assert {e["model"] for e in found} == {"MockEmbedding"}
