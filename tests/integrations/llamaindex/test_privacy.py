"""A sentinel in every content field never reaches the wire."""

from __future__ import annotations

import json
import re
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
HEX_ID = re.compile(r"[0-9a-f-]{12,}")


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
    # No fragment of it either, in any text sent. Numbers (latencies,
    # timestamps) and ids and hashes (hex) are left out: "7731" turns up in
    # them by chance.
    texts = [text for body in ingest.bodies for text in strings(json.loads(body))]
    assert texts and not [text for text in texts if "7731" in text or "ZQXJ" in text]


def strings(value: Any) -> list[str]:
    """Every key and string value in a JSON document, ids and hashes aside."""
    if isinstance(value, dict):
        return [text for key, item in value.items() for text in [key, *strings(item)]]
    if isinstance(value, list):
        return [text for item in value for text in strings(item)]
    if isinstance(value, str) and not HEX_ID.fullmatch(value):
        return [value]
    return []
