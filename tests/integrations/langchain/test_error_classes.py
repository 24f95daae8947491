"""Error classes: a failed model or tool call and the run it ends carry the
real exception's class name (an ``openai.RateLimitError`` raised inside a
LangChain model, a tool's own exception); an HTTP error of a model's API
is an ``external.signal`` with its status; LangGraph's recursion limit
ends the run ``max_iterations``, not as an error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.tools import StructuredTool
from langgraph.errors import GraphRecursionError

from dunetrace import Dunetrace
from dunetrace.exit_reasons import MAX_ITERATIONS
from dunetrace.integrations.langchain import DunetraceCallbackHandler

from .conftest import delivered, well_formed
from .failing import flaky_model
from .fakes import agent, call, question, search


class InventoryUnavailable(RuntimeError):
    """A tool's own error class."""


def inventory(sku: str) -> str:
    """Count a product in stock."""
    raise InventoryUnavailable("warehouse API down")


def signals(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e["payload"] for e in events if e["event_type"] == "external.signal"]


@pytest.mark.parametrize(("error", "status", "name"), [("rate_limit", 429, "rate_limit"), ("server", 500, "api_error")])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["invoke", "ainvoke"])
def test_a_model_api_error_names_its_class_and_status(
    error: str,
    status: int,
    name: str,
    asynchronous: bool,
    dt: Dunetrace,
    ingest: Any,
    handler: DunetraceCallbackHandler,
) -> None:
    graph = create_agent(flaky_model(9, ["never"], error=error), [search])
    expected = "RateLimitError" if error == "rate_limit" else "InternalServerError"
    config: Any = {"callbacks": [handler]}
    with pytest.raises(Exception) as raised:
        if asynchronous:
            asyncio.run(graph.ainvoke(question(), config=config))
        else:
            graph.invoke(question(), config=config)
    assert type(raised.value).__name__ == expected
    events = delivered(dt, ingest)
    well_formed([e for e in events if e["event_type"] != "external.signal"])
    responded = next(e["payload"] for e in events if e["event_type"] == "llm.responded")
    assert (responded["finish_reason"], responded["error_type"]) == ("error", expected)
    assert signals(events) == [
        {"signal_name": name, "source": "langchain", "http_status": status, "error_type": expected}
    ]
    assert events[-1]["event_type"] == "run.errored"
    assert events[-1]["payload"]["error_type"] == expected


def test_a_tool_error_names_the_tools_own_class(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    tool = StructuredTool.from_function(inventory, name="inventory")
    with pytest.raises(InventoryUnavailable):
        agent([[call("inventory", sku="X1")]], [tool]).invoke(question(), config={"callbacks": [handler]})
    events = delivered(dt, ingest)
    well_formed(events)
    responded = next(e["payload"] for e in events if e["event_type"] == "tool.responded")
    assert (responded["success"], responded["error_type"]) == (False, "InventoryUnavailable")
    assert events[-1]["payload"]["error_type"] == "InventoryUnavailable"
    assert signals(events) == []  # not an API error: no status to report


def test_a_successful_call_carries_no_error_type(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    agent([[call("search", query="x")], "ok"]).invoke(question(), config={"callbacks": [handler]})
    events = delivered(dt, ingest)
    assert not any("error_type" in e["payload"] for e in events)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["invoke", "ainvoke"])
def test_the_recursion_limit_ends_the_run_as_max_iterations(
    asynchronous: bool, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    looping = agent([[call("search", query="again")]] * 20)
    config: Any = {"callbacks": [handler], "recursion_limit": 6}
    with pytest.raises(GraphRecursionError):  # the caller still gets LangGraph's error
        if asynchronous:
            asyncio.run(looping.ainvoke(question(), config=config))
        else:
            looping.invoke(question(), config=config)
    events = delivered(dt, ingest)
    well_formed(events)
    assert events[-1]["event_type"] == "run.completed"
    assert events[-1]["payload"]["exit_reason"] == MAX_ITERATIONS
    assert sum(e["event_type"] == "tool.called" for e in events) >= 2
    assert handler.translator.live() == (0, 0)
