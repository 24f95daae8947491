"""A tool whose error is handled is a failed call on every path: the tool's
own ``handle_tool_error`` (True, a message, a function) called directly or
by an agent, sync and async, and ``ToolNode(handle_tool_errors=...)`` in a
graph. The run goes on, and ends as the agent ends it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain_core.tools import StructuredTool, ToolException

from dunetrace import Dunetrace
from dunetrace.integrations.langchain import DunetraceCallbackHandler

from .conftest import delivered, well_formed
from .fakes import agent, call, question, search, state_graph

HANDLERS: dict[str, Any] = {
    "True": True,
    "message": "the lookup failed, try another query",
    "function": lambda error: f"handled: {error}",
}


def refusing_tool(handle: Any) -> StructuredTool:
    def lookup(query: str) -> str:
        """Look something up."""
        raise ToolException("backend refused the query")

    async def alookup(query: str) -> str:
        """Look something up."""
        raise ToolException("backend refused the query")

    return StructuredTool.from_function(lookup, coroutine=alookup, name="lookup", handle_tool_error=handle)


def tool_results(events: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    return [(e["payload"]["tool_name"], e["payload"]["success"]) for e in events if e["event_type"] == "tool.responded"]


@pytest.mark.parametrize("handle", list(HANDLERS), ids=list(HANDLERS))
@pytest.mark.parametrize("asynchronous", [False, True], ids=["invoke", "ainvoke"])
def test_handled_error_of_a_tool_called_directly(
    handle: str, asynchronous: bool, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    tool = refusing_tool(HANDLERS[handle])
    config: Any = {"callbacks": [handler]}
    args = {"query": "paris"}
    output = asyncio.run(tool.ainvoke(args, config=config)) if asynchronous else tool.invoke(args, config=config)
    assert isinstance(output, str)  # LangChain hands back the error text, not a ToolMessage
    events = delivered(dt, ingest)
    well_formed(events)
    assert tool_results(events) == [("lookup", False)]
    responded = next(e["payload"] for e in events if e["event_type"] == "tool.responded")
    assert responded["error_hash"] == dt.hasher.error(output)
    assert "output_length" not in responded


def test_a_tool_returning_text_normally_is_still_a_success(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    assert search.invoke({"query": "paris"}, config={"callbacks": [handler]}) == "results for paris"
    assert tool_results(delivered(dt, ingest)) == [("search", True)]


@pytest.mark.parametrize("handle", list(HANDLERS), ids=list(HANDLERS))
def test_handled_error_inside_an_agent(
    handle: str, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    script = [[call("lookup", query="paris")], [call("search", query="paris")], "Sunny."]
    result = agent(script, [refusing_tool(HANDLERS[handle]), search]).invoke(
        question(), config={"callbacks": [handler]}
    )
    assert result["messages"][2].status == "error"
    events = delivered(dt, ingest)
    well_formed(events)
    assert tool_results(events) == [("lookup", False), ("search", True)]
    assert events[-1]["payload"]["exit_reason"] == "final_answer"


@pytest.mark.parametrize("handle_tool_errors", [True, "Tool failed, try again."], ids=["True", "message"])
def test_tool_node_handling_a_raising_tool(
    handle_tool_errors: Any, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    def flaky(query: str) -> str:
        """Raises."""
        raise ConnectionResetError("peer reset")

    tool = StructuredTool.from_function(flaky, name="flaky")
    script = [[call("flaky", query="x")], [call("flaky", query="x")], "Gave up."]
    state_graph(script, [tool, search], handle_tool_errors=handle_tool_errors).invoke(
        question(), config={"callbacks": [handler]}
    )
    events = delivered(dt, ingest)
    well_formed(events)
    assert tool_results(events) == [("flaky", False), ("flaky", False)]
    failed = [e["payload"] for e in events if e["event_type"] == "tool.responded"]
    assert {p["error_type"] for p in failed} == {"ConnectionResetError"}
    assert events[-1]["event_type"] == "run.completed"
    assert events[-1]["payload"]["exit_reason"] == "final_answer"


@pytest.mark.parametrize("build", [agent, state_graph], ids=["create_agent", "StateGraph"])
def test_arguments_the_tool_rejects(build: Any, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    # ToolNode's default handler answers a validation error with an error
    # ToolMessage; the call is failed, named by pydantic's own error class.
    result = build([[call("search", querry="typo")], "Sorry."]).invoke(question(), config={"callbacks": [handler]})
    assert result["messages"][2].status == "error"
    events = delivered(dt, ingest)
    well_formed(events)
    assert tool_results(events) == [("search", False)]
    failed = next(e["payload"] for e in events if e["event_type"] == "tool.responded")
    assert failed["error_type"] == "ValidationError"
    assert events[-1]["payload"]["exit_reason"] == "final_answer"
