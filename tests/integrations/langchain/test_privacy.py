"""Nothing LangChain hands the handler as content leaves the process: a
sentinel placed in every content field never reaches the ingest server."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.retrievers import BaseRetriever
from langchain_core.tools import ToolException, tool

from dunetrace import Dunetrace
from dunetrace.integrations.langchain import DunetraceCallbackHandler

from .conftest import delivered
from .fakes import ScriptedChatModel, call, state_graph

SENTINEL = "SENTINEL-7f3a9c"


def secret(where: str) -> str:
    return f"{SENTINEL}-{where}"


class SecretDocs(BaseRetriever):
    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return [Document(page_content=secret("document"), metadata={"score": 0.8, "source": secret("doc-meta")})]


@tool
def lookup(query: str) -> str:
    """Look things up."""
    docs = SecretDocs(name="kb").invoke(query)
    return secret("tool-output") + docs[0].page_content


@tool
def leaky(query: str) -> str:
    """Fails with a message holding content."""
    raise ToolException(secret("tool-error-message"))


leaky.handle_tool_error = True


@tool
def raising(query: str) -> str:
    """Raises with content in the message."""
    raise ValueError(secret("exception-message"))


class SecretModel(ScriptedChatModel):
    """Puts content in every field a provider fills."""

    def _generate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
        result = super()._generate(messages, *args, **kwargs)
        message = result.generations[0].message
        message.response_metadata["system_fingerprint"] = "fp"  # metadata, harmless
        message.additional_kwargs["reasoning"] = secret("reasoning")
        return result


def test_no_content_reaches_the_server(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    script = [
        "(the earlier reply in the input)",  # the scripted model counts model turns
        [call("lookup", query=secret("tool-args"))],
        [call("leaky", query=secret("args-2"))],
        [call("raising", query=secret("args-3"))],
        secret("final-answer"),
    ]
    graph = state_graph(script, [lookup, leaky, raising], handle_tool_errors=True)
    inputs = {
        "messages": [
            SystemMessage(secret("system-prompt")),
            HumanMessage(secret("user-input"), additional_kwargs={"note": secret("extra")}),
            AIMessage(secret("earlier-reply")),
            HumanMessage([{"type": "text", "text": secret("content-block")}]),
        ]
    }
    result = graph.invoke(inputs, config={"callbacks": [handler], "metadata": {"user": "u1"}})
    assert result["messages"][-1].content == secret("final-answer")

    # Streaming, a bare model call, an LLM error: their content too.
    model = ScriptedChatModel(script=[secret("streamed")])
    list(model.stream(secret("stream-prompt"), config={"callbacks": [handler]}))

    class Failing(ScriptedChatModel):
        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError(secret("llm-error"))

    with pytest.raises(RuntimeError):
        Failing(script=[]).invoke(secret("failing-prompt"), config={"callbacks": [handler]})

    events = delivered(dt, ingest, runs=3)
    kinds = {e["event_type"] for e in events}
    assert {"retrieval.responded", "tool.responded", "llm.responded", "run.errored"} <= kinds
    assert any(e["event_type"] == "tool.responded" and not e["payload"]["success"] for e in events)
    raw = ingest.raw()
    assert b"lookup" in raw and b"kb" in raw  # the metadata was sent
    assert SENTINEL.encode() not in raw
