"""Real llama-index-core agents (FunctionAgent, ReActAgent, AgentWorkflow)
with a scripted LLM, reported to a real ingest server."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.tools import FunctionTool

from dunetrace import Dunetrace
from dunetrace.model_calls import in_framework_model_call

from .fakes import Call, ScriptedLLM
from .recorded import by_run, only, tool_loop, types, well_formed


def lookup(city: str) -> str:
    """Look up the weather in a city."""
    if city == "atlantis":
        raise LookupError("no such city")
    return f"sunny in {city}"


def loop_agent(streaming: bool = True) -> FunctionAgent:
    script = [Call("lookup", {"city": "paris"})] * 4 + ["It is sunny."]
    return FunctionAgent(
        tools=[FunctionTool.from_defaults(lookup)],
        llm=ScriptedLLM(script),
        system_prompt="You answer weather questions.",
        streaming=streaming,
    )


@pytest.mark.parametrize("streaming", [True, False])
async def test_function_agent_tool_loop_meets_the_contract(instrumented: Any, received: Any, streaming: bool) -> None:
    result = await loop_agent(streaming).run("weather in paris?")
    assert str(result) == "It is sunny."

    runs = by_run(received())
    assert len(runs) == 1
    events = next(iter(runs.values()))
    well_formed(events)
    assert types(events) == (
        ["run.started"]
        + ["llm.called", "llm.responded", "tool.called", "tool.responded"] * 4
        + ["llm.called", "llm.responded", "run.completed"]
    )
    started = events[0]
    assert started["agent_id"] == "li-agent" and started["parent_run_id"] is None
    assert started["payload"]["tools"] == ["lookup"] and started["payload"]["model"] == "scripted-1"
    assert "input_hash" in started["payload"]
    assert [e["step_index"] for e in events] == [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 9]

    assert tool_loop(events)
    calls = only(events, "tool.called")
    assert len({c["payload"]["args_hash"] for c in calls}) == 1  # same args, same hash
    assert all(
        r["payload"]["success"] is True and r["payload"]["output_length"] == len("sunny in paris")
        for r in only(events, "tool.responded")
    )

    llm = only(events, "llm.responded")
    assert [r["payload"]["finish_reason"] for r in llm] == ["tool_calls"] * 4 + ["stop"]
    assert all(r["payload"]["completion_tokens"] > 0 and r["payload"]["prompt_tokens"] > 0 for r in llm)
    assert all(r["payload"]["latency_ms"] >= 0 for r in llm)
    assert llm[-1]["payload"]["output_length"] == len("It is sunny.")
    assert all(c["payload"]["model"] == "scripted-1" for c in only(events, "llm.called"))
    assert events[-1]["payload"] == {"exit_reason": "final_answer", "total_steps": 9}


async def test_react_agent_run(instrumented: Any, received: Any) -> None:
    script = [
        'Thought: I need the weather.\nAction: lookup\nAction Input: {"city": "oslo"}',
        "Thought: I can answer without using any more tools.\nAnswer: Sunny in Oslo.",
    ]
    agent = ReActAgent(tools=[FunctionTool.from_defaults(lookup)], llm=ScriptedLLM(script))
    result = await agent.run("weather in oslo?")
    assert "Sunny in Oslo" in str(result)

    (events,) = by_run(received()).values()
    well_formed(events)
    assert types(events) == [
        "run.started",
        "llm.called",
        "llm.responded",
        "tool.called",
        "tool.responded",
        "llm.called",
        "llm.responded",
        "run.completed",
    ]
    assert only(events, "tool.called")[0]["payload"]["tool_name"] == "lookup"
    assert only(events, "tool.responded")[0]["payload"]["success"] is True
    assert events[-1]["payload"]["exit_reason"] == "final_answer"


async def test_a_tool_that_raises_is_a_failed_tool_call_and_the_run_goes_on(instrumented: Any, received: Any) -> None:
    llm = ScriptedLLM([Call("lookup", {"city": "atlantis"}), Call("lookup", {"city": "rome"}), "Rome is sunny."])
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(lookup)], llm=llm)
    assert str(await agent.run("weather?")) == "Rome is sunny."

    (events,) = by_run(received()).values()
    well_formed(events)
    failed, succeeded = only(events, "tool.responded")
    assert failed["payload"]["success"] is False and len(failed["payload"]["error_hash"]) == 64
    assert succeeded["payload"]["success"] is True and "error_hash" not in succeeded["payload"]
    assert events[-1]["event_type"] == "run.completed"


async def test_an_agent_run_that_raises_is_run_errored(instrumented: Any, received: Any) -> None:
    llm = ScriptedLLM([Call("lookup", {"city": "rome"}), ConnectionError("provider down")])
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(lookup)], llm=llm, streaming=False)
    with pytest.raises(ConnectionError):
        await agent.run("weather?")

    (events,) = by_run(received()).values()
    well_formed(events)
    assert types(events)[-3:] == ["llm.called", "llm.responded", "run.errored"]
    assert only(events, "llm.responded")[-1]["payload"]["finish_reason"] == "error"
    assert events[-1]["payload"]["error_type"] == "ConnectionError"
    assert len(instrumented.translator._runs) == 0 and instrumented.translator._llm == {}


async def test_an_agent_used_as_a_tool_is_a_child_run(instrumented: Any, received: Any) -> None:
    inner = FunctionAgent(
        name="researcher",
        tools=[FunctionTool.from_defaults(lookup)],
        llm=ScriptedLLM([Call("lookup", {"city": "lima"}), "Lima is sunny."]),
    )

    async def ask_researcher(question: str) -> str:
        """Ask the research agent."""
        return str(await inner.run(question))

    outer = FunctionAgent(
        name="planner",
        tools=[FunctionTool.from_defaults(ask_researcher)],
        llm=ScriptedLLM([Call("ask_researcher", {"question": "lima?"}), "Done: Lima is sunny."]),
    )
    assert str(await outer.run("plan a trip")) == "Done: Lima is sunny."

    runs = by_run(received())
    assert len(runs) == 2
    parent = next(e for e in runs.values() if e[0]["parent_run_id"] is None)
    child = next(e for e in runs.values() if e[0]["parent_run_id"] is not None)
    well_formed(parent)
    well_formed(child)
    assert child[0]["parent_run_id"] == parent[0]["run_id"]
    assert child[0]["agent_id"] == "li-agent/researcher"
    assert [e["payload"]["tool_name"] for e in only(parent, "tool.called")] == ["ask_researcher"]
    assert [e["payload"]["tool_name"] for e in only(child, "tool.called")] == ["lookup"]
    assert all(e["parent_run_id"] == parent[0]["run_id"] for e in child)


async def test_a_run_opened_by_the_caller_takes_the_events(dt: Dunetrace, instrumented: Any, received: Any) -> None:
    llm = ScriptedLLM([Call("lookup", {"city": "nice"}), "Nice is sunny."])
    in_flight: list[bool] = []
    llm.observe(lambda: in_flight.append(in_framework_model_call()))
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(lookup)], llm=llm, streaming=False)

    async with dt.run("my-app", user_input="weather?"):
        await agent.run("weather?")
        assert not in_framework_model_call()
    assert in_flight == [True, True]  # the integration was reporting each call while it ran

    (events,) = by_run(received()).values()
    well_formed(events)
    assert {e["agent_id"] for e in events} == {"my-app"}
    assert types(events) == [
        "run.started",
        "llm.called",
        "llm.responded",
        "tool.called",
        "tool.responded",
        "llm.called",
        "llm.responded",
        "run.completed",
    ]


async def test_state_is_empty_after_runs(instrumented: Any, received: Any) -> None:
    for _ in range(3):
        await loop_agent().run("weather in paris?")
    assert len(by_run(received())) == 3
    translator = instrumented.translator
    assert translator._spans == {} and len(translator._runs) == 0
    assert translator._llm == {} and translator._retrievals == {}


async def test_agent_workflow_with_a_handoff_is_one_run(instrumented: Any, received: Any) -> None:
    from llama_index.core.agent.workflow import AgentWorkflow

    triage = FunctionAgent(
        name="triage",
        description="Routes questions.",
        llm=ScriptedLLM([Call("handoff", {"to_agent": "weather", "reason": "a weather question"})]),
        can_handoff_to=["weather"],
    )
    weather = FunctionAgent(
        name="weather",
        description="Answers weather questions.",
        tools=[FunctionTool.from_defaults(lookup)],
        llm=ScriptedLLM([Call("lookup", {"city": "bern"}), "Sunny in Bern."]),
    )
    workflow = AgentWorkflow(agents=[triage, weather], root_agent="triage")
    assert str(await workflow.run("weather in bern?")) == "Sunny in Bern."

    (events,) = by_run(received()).values()
    well_formed(events)
    assert events[0]["parent_run_id"] is None and "lookup" in events[0]["payload"]["tools"]
    assert [e["payload"]["tool_name"] for e in only(events, "tool.called")] == ["handoff", "lookup"]
    assert len(only(events, "llm.called")) == 3
    assert events[-1]["payload"]["exit_reason"] == "final_answer"


async def test_a_query_engine_tool_adds_its_retrieval_to_the_agent_run(instrumented: Any, received: Any) -> None:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.tools import QueryEngineTool

    index = VectorStoreIndex.from_documents(
        [Document(text="Bern is in Switzerland.")], embed_model=MockEmbedding(embed_dim=8)
    )
    docs = QueryEngineTool.from_defaults(
        index.as_query_engine(llm=ScriptedLLM(["In Switzerland."])), name="docs", description="Facts."
    )
    agent = FunctionAgent(tools=[docs], llm=ScriptedLLM([Call("docs", {"input": "where is Bern?"}), "Switzerland."]))
    assert str(await agent.run("where is Bern?")) == "Switzerland."

    (events,) = by_run(received()).values()
    well_formed(events)
    assert types(events) == [
        "run.started",
        "llm.called",
        "llm.responded",
        "tool.called",
        "retrieval.called",
        "external.signal",  # the query's embedding (EMBEDDING)
        "retrieval.responded",
        "llm.called",
        "llm.responded",
        "tool.responded",
        "llm.called",
        "llm.responded",
        "run.completed",
    ]
    assert only(events, "retrieval.responded")[0]["payload"]["result_count"] == 1


async def test_a_sync_tool_wrapped_for_async_is_one_call(instrumented: Any, received: Any) -> None:
    from llama_index.core.tools.types import BaseTool, ToolMetadata, ToolOutput

    class Clock(BaseTool):  # sync only: the agent wraps it in BaseToolAsyncAdapter
        @property
        def metadata(self) -> ToolMetadata:
            return ToolMetadata(name="clock", description="The time.")

        def __call__(self, input: Any = None, **kwargs: Any) -> ToolOutput:
            return ToolOutput(content="12:00", tool_name="clock", raw_input={}, raw_output="12:00")

    agent = FunctionAgent(tools=[Clock()], llm=ScriptedLLM([Call("clock", {"input": "now"}), "Noon."]))
    assert str(await agent.run("time?")) == "Noon."
    (events,) = by_run(received()).values()
    well_formed(events)
    assert [e["payload"]["tool_name"] for e in only(events, "tool.called")] == ["clock"]
    assert only(events, "tool.responded")[0]["payload"]["output_length"] == len("12:00")
