"""Issue 16 point 9 on real crews: a tool name the model invented is a
failed tool call, and a crew's ``agent_version`` covers every agent's
prompt (role, goal, backstory), model and tools."""

from __future__ import annotations

from typing import Any

import pytest
from crewai import Agent, Crew, Task

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer

from .crews import ScriptedLLM, answer_reply, final, lookup, openai_llm, react, search, tool_call_reply
from .wire import by_run, delivered


def _runs(events: list[dict[str, Any]], agent_id: str) -> list[list[dict[str, Any]]]:
    return [v for k, v in by_run(events).items() if k.split("#")[0] == agent_id]


def _tool_events(run: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    return [
        (e["event_type"], e["payload"]["tool_name"], e["payload"].get("success"))
        for e in run
        if e["event_type"].startswith("tool.")
    ]


def test_an_invented_tool_name_is_one_failed_call(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    llm = ScriptedLLM(
        model="scripted", script=[react("web_search", {"query": "q"}), react("search", {"query": "q"}), final("x")]
    )
    agent = Agent(role="Researcher", goal="Find", backstory="b", llm=llm, tools=[search], cache=False)
    crew = Crew(agents=[agent], tasks=[Task(name="find", description="Find it", expected_output="x", agent=agent)])
    assert crew.kickoff().raw == "x"
    (researcher,) = _runs(delivered(ingest, crew_dt, runs=2), "crew.researcher")
    assert researcher[0]["payload"]["tools"] == ["search"]
    # CrewAI 1.15 reports the unknown name several times for one reply.
    assert _tool_events(researcher) == [
        ("tool.called", "web_search", None),
        ("tool.responded", "web_search", False),
        ("tool.called", "search", None),
        ("tool.responded", "search", True),
    ]
    (failed,) = [
        e["payload"] for e in researcher if e["event_type"] == "tool.responded" and not e["payload"]["success"]
    ]
    assert failed["error_type"] == "Exception"  # what CrewAI raises for it
    assert researcher[-1]["payload"]["exit_reason"] == "final_answer"


def test_an_invented_native_tool_call_is_a_failed_call(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    llm, _ = openai_llm([tool_call_reply(1, "web_search", {"query": "q"}), answer_reply("done", 300)])
    agent = Agent(role="Researcher", goal="Find", backstory="b", llm=llm, tools=[search], cache=False)
    crew = Crew(agents=[agent], tasks=[Task(name="find", description="Find it", expected_output="x", agent=agent)])
    assert crew.kickoff().raw == "done"
    (researcher,) = _runs(delivered(ingest, crew_dt, runs=2), "crew.researcher")
    assert _tool_events(researcher) == [("tool.called", "web_search", None), ("tool.responded", "web_search", False)]


def _crew(writer_model: str = "scripted-2", writer_tools: list[Any] | None = None, writer_goal: str = "Write") -> Crew:
    researcher = Agent(
        role="Researcher", goal="Find", backstory="b", llm=ScriptedLLM(model="scripted-1", script=[final("f")])
    )
    writer = Agent(
        role="Writer",
        goal=writer_goal,
        backstory="b",
        llm=ScriptedLLM(model=writer_model, script=[final("w")]),
        tools=writer_tools or [],
    )
    return Crew(
        agents=[researcher, writer],
        tasks=[
            Task(name="r", description="Research", expected_output="x", agent=researcher),
            Task(name="w", description="Write", expected_output="x", agent=writer),
        ],
    )


@pytest.mark.parametrize(
    "changed",
    [
        {"writer_model": "scripted-3"},
        {"writer_tools": [lookup]},
        {"writer_goal": "Write briefly"},
    ],
    ids=["model", "tools", "prompt"],
)
def test_the_crew_version_covers_every_agent(crew_dt: Dunetrace, ingest: IngestServer, changed: dict[str, Any]) -> None:
    for crew in (_crew(), _crew(), _crew(**changed)):
        crew.kickoff()
    crew_runs = sorted(_runs(delivered(ingest, crew_dt, runs=9), "crew"), key=lambda run: run[0]["timestamp"])
    first, same, other = (run[0]["agent_version"] for run in crew_runs)
    assert first == same
    assert other != first
