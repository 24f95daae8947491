"""How a LlamaIndex 0.14 agent's tool calls end, on real agents: a
``ToolOutput(is_error=True)``, an exception the agent handles, a tool the
model made up, and structured output (``output_cls``), which is the model's
answer and not a tool of the agent."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent, ReActAgent
from llama_index.core.tools import FunctionTool
from llama_index.core.tools.types import BaseTool, ToolMetadata, ToolOutput
from pydantic import BaseModel

from dunetrace.exit_reasons import FINAL_ANSWER

from .fakes import Call, ScriptedLLM
from .recorded import by_run, only, types, well_formed


class Weather(BaseModel):
    """The weather in a city."""

    city: str
    sky: str


def lookup(city: str) -> str:
    """Look up the weather in a city."""
    if city == "atlantis":
        raise LookupError("no such city")
    return f"sunny in {city}"


class Flaky(BaseTool):
    """Answers with an error ToolOutput instead of raising."""

    @property
    def metadata(self) -> ToolMetadata:
        return ToolMetadata(name="flaky", description="Sometimes fails.")

    def __call__(self, input: Any = None, **kwargs: Any) -> ToolOutput:
        return ToolOutput(content="quota exceeded", tool_name="flaky", raw_input=kwargs, raw_output=None, is_error=True)


def outcomes(events: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    return [(e["payload"]["tool_name"], e["payload"]["success"]) for e in only(events, "tool.responded")]


async def test_an_error_tool_output_is_a_failed_call(instrumented: Any, received: Any) -> None:
    agent = FunctionAgent(tools=[Flaky()], llm=ScriptedLLM([Call("flaky", {"input": "x"}), "Gave up."]))
    assert str(await agent.run("try")) == "Gave up."
    (events,) = by_run(received()).values()
    well_formed(events)
    assert outcomes(events) == [("flaky", False)]
    assert len(only(events, "tool.responded")[0]["payload"]["error_hash"]) == 64


async def test_a_raised_error_the_react_agent_handles_is_a_failed_call(instrumented: Any, received: Any) -> None:
    script = [
        'Thought: I need the weather.\nAction: lookup\nAction Input: {"city": "atlantis"}',
        "Thought: I can answer without using any more tools.\nAnswer: Unknown.",
    ]
    agent = ReActAgent(tools=[FunctionTool.from_defaults(lookup)], llm=ScriptedLLM(script))
    assert "Unknown" in str(await agent.run("weather in atlantis?"))
    (events,) = by_run(received()).values()
    well_formed(events)
    assert outcomes(events) == [("lookup", False)]
    assert events[-1]["payload"]["exit_reason"] == FINAL_ANSWER


@pytest.mark.parametrize("kind", ["FunctionAgent", "AgentWorkflow"])
async def test_a_tool_the_model_made_up_is_a_failed_call(instrumented: Any, received: Any, kind: str) -> None:
    llm = ScriptedLLM([Call("teleport", {"to": "mars"}), Call("lookup", {"city": "rome"}), "Rome is sunny."])
    agent: Any = FunctionAgent(name="weather", tools=[FunctionTool.from_defaults(lookup)], llm=llm, streaming=False)
    if kind == "AgentWorkflow":
        agent = AgentWorkflow(agents=[agent], root_agent="weather")
    assert str(await agent.run("weather?")) == "Rome is sunny."
    (events,) = by_run(received()).values()
    well_formed(events)
    assert events[0]["payload"]["tools"] == ["lookup"]
    assert outcomes(events) == [("teleport", False), ("lookup", True)]
    made_up = only(events, "tool.called")[0]["payload"]
    assert made_up["tool_name"] == "teleport" and len(made_up["args_hash"]) == 64
    assert len(only(events, "tool.responded")[0]["payload"]["error_hash"]) == 64


async def test_made_up_tools_in_a_row_are_seen_as_failures(instrumented: Any, received: Any) -> None:
    llm = ScriptedLLM([Call("teleport", {"to": "mars"})] * 3 + ["I cannot."])
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(lookup)], llm=llm, streaming=False)
    await agent.run("go to mars")
    (events,) = by_run(received()).values()
    assert outcomes(events) == [("teleport", False)] * 3  # what RETRY_STORM reads


async def test_structured_output_is_not_a_tool_call(instrumented: Any, received: Any) -> None:
    llm = ScriptedLLM(
        [Call("lookup", {"city": "oslo"}), "It is sunny.", Call("Weather", {"city": "oslo", "sky": "sunny"})]
    )
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(lookup)], llm=llm, output_cls=Weather, streaming=False)
    result = await agent.run("weather in oslo?")
    assert result.structured_response == {"city": "oslo", "sky": "sunny"}
    (events,) = by_run(received()).values()
    well_formed(events)
    assert events[0]["payload"]["tools"] == ["lookup"]
    assert [e["payload"]["tool_name"] for e in only(events, "tool.called")] == ["lookup"]
    assert len(only(events, "llm.called")) == 3  # the structured answer is a model call
    assert events[-1]["event_type"] == "run.completed" and events[-1]["payload"]["exit_reason"] == FINAL_ANSWER


async def test_structured_output_of_an_agent_workflow_is_not_a_tool_call(instrumented: Any, received: Any) -> None:
    weather = FunctionAgent(
        name="weather",
        description="Answers weather questions.",
        tools=[FunctionTool.from_defaults(lookup)],
        llm=ScriptedLLM(
            [Call("lookup", {"city": "bern"}), "Sunny in Bern.", Call("Weather", {"city": "bern", "sky": "sunny"})]
        ),
        streaming=False,
    )
    workflow = AgentWorkflow(agents=[weather], root_agent="weather", output_cls=Weather)
    result = await workflow.run("weather in bern?")
    assert result.structured_response == {"city": "bern", "sky": "sunny"}
    (events,) = by_run(received()).values()
    well_formed(events)
    assert [e["payload"]["tool_name"] for e in only(events, "tool.called")] == ["lookup"]
    assert types(events)[-1] == "run.completed" and events[-1]["payload"]["exit_reason"] == FINAL_ANSWER
