"""A tool the agent does not have (a name the model invented) is a failed
call of that name; in a multi-agent workflow every agent's configuration
is reported: each named agent that is a node of another graph, and each
agent invoked inside a tool, is a child run with its own agent_version."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph

from dunetrace import Dunetrace
from dunetrace.integrations.langchain import DunetraceCallbackHandler
from dunetrace.run import agent_version

from .conftest import delivered, runs_of, tool_loop, well_formed
from .fakes import ScriptedChatModel, agent, calculator, call, question, search, state_graph

SECRET = "sentinel-invented-destination-4417"


def tool_results(events: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    return [(e["payload"]["tool_name"], e["payload"]["success"]) for e in events if e["event_type"] == "tool.responded"]


@pytest.mark.parametrize("build", [agent, state_graph], ids=["create_agent", "StateGraph"])
def test_an_invented_tool_is_a_failed_call(
    build: Any, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    script = [[call("teleport", to=SECRET), call("search", query="x")], [call("teleport", to="mars")], "Sorry."]
    result = build(script).invoke(question(), config={"callbacks": [handler]})
    errors = [m for m in result["messages"] if getattr(m, "status", None) == "error"]
    assert [m.name for m in errors] == ["teleport", "teleport"]
    events = delivered(dt, ingest)
    well_formed(events)
    assert sorted(tool_results(events)) == [("search", True), ("teleport", False), ("teleport", False)]
    invented = [
        e["payload"] for e in events if e["event_type"] == "tool.called" and e["payload"]["tool_name"] == "teleport"
    ]
    assert [p["args_hash"] for p in invented] == [dt.hasher.value({"to": SECRET}), dt.hasher.value({"to": "mars"})]
    assert SECRET.encode() not in ingest.raw()
    failed = [e["payload"] for e in events if e["event_type"] == "tool.responded" and not e["payload"]["success"]]
    assert {p["error_hash"] for p in failed} == {dt.hasher.error(m.content) for m in errors}
    assert events[0]["payload"]["tools"] == ["search", "calculator"]
    assert events[-1]["payload"]["exit_reason"] == "final_answer"
    assert handler.translator.live() == (0, 0)
    assert handler.translator.invented_pending == 0


def test_a_loop_on_an_invented_tool_is_seen(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    agent([[call("teleport", to="moon")]] * 3 + ["Sorry."]).invoke(question(), config={"callbacks": [handler]})
    events = delivered(dt, ingest)
    assert tool_results(events) == [("teleport", False)] * 3
    assert tool_loop(events)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["invoke", "ainvoke"])
def test_named_agents_as_graph_nodes_are_child_runs(
    asynchronous: bool, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    researcher = create_agent(
        ScriptedChatModel(script=[[call("search", query="x")], "found"], model_name="research-model"),
        [search],
        system_prompt="You research.",
        name="researcher",
    )
    writer = create_agent(
        ScriptedChatModel(script=["", "", "written"], model_name="writer-model"),
        [calculator],
        system_prompt="You write.",
        name="writer",
    )
    graph = StateGraph(MessagesState)
    graph.add_node("researcher", researcher)
    graph.add_node("writer", writer)
    graph.add_edge(START, "researcher")
    graph.add_edge("researcher", "writer")
    graph.add_edge("writer", END)
    workflow_graph = graph.compile()
    config: Any = {"callbacks": [handler]}
    if asynchronous:
        asyncio.run(workflow_graph.ainvoke(question(), config=config))
    else:
        workflow_graph.invoke(question(), config=config)

    runs = list(runs_of(delivered(dt, ingest, runs=3)).values())
    assert len(runs) == 3
    for run in runs:
        well_formed(run)
    (workflow,) = [r for r in runs if r[0]["parent_run_id"] is None]
    children = {r[0]["payload"].get("model"): r for r in runs if r[0]["parent_run_id"] is not None}
    assert set(children) == {"research-model", "writer-model"}
    assert {r[0]["parent_run_id"] for r in children.values()} == {workflow[0]["run_id"]}
    research, write = children["research-model"], children["writer-model"]
    assert research[0]["payload"]["tools"] == ["search"]
    assert research[0]["agent_version"] == agent_version(dt.hasher.value("You research."), "research-model", ["search"])
    assert write[0]["agent_version"] == agent_version(dt.hasher.value("You write."), "writer-model", ["calculator"])
    assert [e["payload"]["tool_name"] for e in research if e["event_type"] == "tool.called"] == ["search"]
    # The workflow's own run holds no calls: each agent's are in its run.
    assert [e["event_type"] for e in workflow] == ["run.started", "run.completed"]
    # The workflow starts before its agents and ends after them.
    assert workflow[0]["timestamp"] <= min(r[0]["timestamp"] for r in children.values())
    assert workflow[-1]["timestamp"] >= max(r[-1]["timestamp"] for r in children.values())
    assert handler.translator.live() == (0, 0)


def test_a_supervisor_with_agents_as_tools(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    researcher = create_agent(
        ScriptedChatModel(script=[[call("search", query="x")], "found"], model_name="research-model"),
        [search],
        system_prompt="You research.",
        name="researcher",
    )

    @tool
    def research(topic: str) -> str:
        """Ask the researcher."""
        return researcher.invoke(question(topic))["messages"][-1].content

    supervisor = create_agent(
        ScriptedChatModel(script=[[call("research", topic="paris")], "Paris is sunny."], model_name="boss-model"),
        [research],
        system_prompt="You delegate.",
        name="supervisor",
    )
    supervisor.invoke(question(), config={"callbacks": [handler]})
    runs = list(runs_of(delivered(dt, ingest, runs=2)).values())
    assert len(runs) == 2
    (boss,) = [r for r in runs if r[0]["parent_run_id"] is None]
    (child,) = [r for r in runs if r[0]["parent_run_id"] == boss[0]["run_id"]]
    assert boss[0]["agent_version"] == agent_version(dt.hasher.value("You delegate."), "boss-model", ["research"])
    assert child[0]["agent_version"] == agent_version(dt.hasher.value("You research."), "research-model", ["search"])
    assert [e["payload"]["tool_name"] for e in boss if e["event_type"] == "tool.called"] == ["research"]
