"""A sentinel in every content field never reaches the wire."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.tools import FunctionTool

from dunetrace import Dunetrace

from .fakes import Call, ScriptedLLM
from .recorded import by_run, well_formed

SENTINEL = "ZQXJ-sentinel-7731"


async def test_no_content_leaves_the_process(dt: Dunetrace, instrumented: Any, received: Any, ingest: Any) -> None:
    index = VectorStoreIndex.from_documents(
        [Document(text=f"document {SENTINEL} {k}") for k in range(3)], embed_model=MockEmbedding(embed_dim=8)
    )

    def search(query: str) -> str:
        """Search the documents."""
        if "fail" in query:
            raise RuntimeError(f"error message {SENTINEL}")
        return f"tool output {SENTINEL}"

    engine = index.as_query_engine(llm=ScriptedLLM([f"rag answer {SENTINEL}"], repeat=True), similarity_top_k=2)

    async def ask_docs(question: str) -> str:
        """Ask the document index."""
        return str(await engine.aquery(question))

    agent = FunctionAgent(
        name="private",
        system_prompt=f"system prompt {SENTINEL}",
        tools=[FunctionTool.from_defaults(search), FunctionTool.from_defaults(ask_docs)],
        llm=ScriptedLLM(
            [
                Call("search", {"query": f"tool args {SENTINEL}"}),
                Call("search", {"query": f"fail {SENTINEL}"}),
                Call("ask_docs", {"question": f"retrieval query {SENTINEL}"}),
                f"completion {SENTINEL}",
            ]
        ),
    )
    assert SENTINEL in str(await agent.run(f"user message {SENTINEL}"))
    failing = FunctionAgent(llm=ScriptedLLM([RuntimeError(f"run error {SENTINEL}")]), streaming=False)
    with pytest.raises(RuntimeError):
        await failing.run(f"user message {SENTINEL}")
    async with dt.run("caller", user_input=f"caller input {SENTINEL}"):
        await engine.aquery(f"query in caller run {SENTINEL}")

    events = received()
    runs = by_run(events)
    assert len(runs) == 3
    for run_events in runs.values():
        well_formed(run_events)
    kinds = {e["event_type"] for e in events}
    assert {"retrieval.called", "tool.called", "llm.responded", "run.errored"} <= kinds
    raw = ingest.raw()
    assert raw and SENTINEL.encode() not in raw
    assert b"7731" not in raw
