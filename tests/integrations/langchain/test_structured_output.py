"""Structured output: ``with_structured_output`` (function calling and JSON
mode) and ``create_agent(response_format=...)``. The output schema is not a
tool of the agent (not in ``run.started`` tools nor in ``agent_version``),
is never reported as a tool call, and the run ends as an answer."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain.agents.structured_output import ProviderStrategy, ToolStrategy
from langchain_core.output_parsers import JsonOutputParser
from pydantic import BaseModel

from dunetrace import Dunetrace
from dunetrace.integrations.langchain import DunetraceCallbackHandler
from dunetrace.run import agent_version

from .conftest import delivered, shape, well_formed
from .failing import OpenAIToolsChatModel
from .fakes import call, question, search

SYSTEM = "You report the weather."


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    sunny: bool


class JsonModeChatModel(OpenAIToolsChatModel):
    """``with_structured_output(method="json_mode")`` as provider models do
    it: the JSON mode and the schema bound, no tool, a JSON parser."""

    def with_structured_output(self, schema: Any, *, method: str = "function_calling", **kwargs: Any) -> Any:
        if method != "json_mode":
            return super().with_structured_output(schema, **kwargs)
        bound = self.bind(
            response_format={"type": "json_object"},
            ls_structured_output_format={"kwargs": {"method": "json_mode"}, "schema": schema},
        )
        return bound | JsonOutputParser()


def tool_names_called(events: list[dict[str, Any]]) -> list[str]:
    return [e["payload"]["tool_name"] for e in events if e["event_type"] == "tool.called"]


@pytest.mark.parametrize("method", ["function_calling", "json_mode"])
def test_with_structured_output_is_an_answer_without_tools(
    method: str, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    reply: Any = [call("Weather", city="Paris", sunny=True)] if method == "function_calling" else '{"city": "Paris"}'
    model = JsonModeChatModel(script=[reply]).with_structured_output(Weather, method=method)
    result = model.invoke("How is Paris?", config={"callbacks": [handler]})
    assert (result.city if method == "function_calling" else result["city"]) == "Paris"
    events = delivered(dt, ingest)
    well_formed(events)
    assert shape(events) == [
        ("run.started", 0, None),
        ("llm.called", 1, None),
        ("llm.responded", 1, None),
        ("run.completed", 1, "final_answer"),
    ]
    assert events[0]["payload"]["tools"] == []
    assert events[0]["agent_version"] == agent_version(None, "scripted-model", [])


@pytest.mark.parametrize(
    "response_format",
    [ToolStrategy(Weather), Weather],
    ids=["ToolStrategy", "schema"],
)
@pytest.mark.parametrize("asynchronous", [False, True], ids=["invoke", "ainvoke"])
def test_create_agent_output_tool_is_not_an_agent_tool(
    response_format: Any, asynchronous: bool, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    script = [[call("search", query="paris weather")], [call("Weather", city="Paris", sunny=True)]]
    agent = create_agent(
        OpenAIToolsChatModel(script=script), [search], system_prompt=SYSTEM, response_format=response_format
    )
    config: Any = {"callbacks": [handler]}
    result = asyncio.run(agent.ainvoke(question(), config=config)) if asynchronous else agent.invoke(question(), config)
    assert result["structured_response"] == Weather(city="Paris", sunny=True)
    events = delivered(dt, ingest)
    well_formed(events)
    assert events[0]["payload"]["tools"] == ["search"]
    assert {e["agent_version"] for e in events} == {
        agent_version(dt.hasher.value(SYSTEM), "scripted-model", ["search"])
    }
    assert tool_names_called(events) == ["search"]
    assert events[-1]["payload"]["exit_reason"] == "final_answer"
    assert handler.translator.live() == (0, 0)


def test_create_agent_provider_strategy_is_an_answer(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    script = [[call("search", query="paris weather")], '{"city": "Paris", "sunny": true}']
    agent = create_agent(
        OpenAIToolsChatModel(script=script), [search], system_prompt=SYSTEM, response_format=ProviderStrategy(Weather)
    )
    result = agent.invoke(question(), config={"callbacks": [handler]})
    assert result["structured_response"] == Weather(city="Paris", sunny=True)
    events = delivered(dt, ingest)
    well_formed(events)
    assert events[0]["payload"]["tools"] == ["search"]
    assert tool_names_called(events) == ["search"]
    assert events[-1]["payload"]["exit_reason"] == "final_answer"


def test_the_same_agent_without_structured_output_has_the_same_version(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    plain = create_agent(OpenAIToolsChatModel(script=["Sunny."]), [search], system_prompt=SYSTEM)
    structured = create_agent(
        OpenAIToolsChatModel(script=[[call("Weather", city="Paris", sunny=True)]]),
        [search],
        system_prompt=SYSTEM,
        response_format=ToolStrategy(Weather),
    )
    plain.invoke(question(), config={"callbacks": [handler]})
    structured.invoke(question(), config={"callbacks": [handler]})
    events = delivered(dt, ingest, runs=2)
    started = [e for e in events if e["event_type"] == "run.started"]
    assert [e["payload"]["tools"] for e in started] == [["search"], ["search"]]
    assert started[0]["agent_version"] == started[1]["agent_version"]
    assert [e["payload"]["exit_reason"] for e in events if e["event_type"] == "run.completed"] == ["final_answer"] * 2
