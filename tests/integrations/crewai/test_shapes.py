"""Failures, native tool calls, concurrency and CrewAI's other ways of
running a crew, each against a real crew (offline)."""

from __future__ import annotations

import threading

import pytest
from crewai import Agent, Crew, Process, Task

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer

from .crews import (
    ScriptedLLM,
    answer_reply,
    final,
    lookup,
    openai_llm,
    react,
    search,
    tool_call_reply,
    two_agent_crew,
)
from .wire import by_run, delivered, shape


def _runs(events: list[dict], prefix: str) -> list[list[dict]]:
    return [v for k, v in by_run(events).items() if k.split("#")[0] == prefix]


def test_native_tool_calls_through_openai_provider(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    llm, sent = openai_llm(
        [
            tool_call_reply(1, "search", {"query": "a"}),
            tool_call_reply(2, "search", {"query": "b"}),
            tool_call_reply(3, "search", {"query": "c"}),
            answer_reply("done", 900),
        ]
    )
    agent = Agent(role="Researcher", goal="Find", backstory="b", llm=llm, tools=[search], cache=False)
    crew = Crew(agents=[agent], tasks=[Task(name="find", description="Find it", expected_output="x", agent=agent)])
    assert crew.kickoff().raw == "done"
    assert len(sent) == 4
    (researcher,) = _runs(delivered(ingest, crew_dt, runs=2), "crew.researcher")
    assert shape(researcher)[2:] == [
        ("llm.called", 1, None),
        ("llm.responded", 1, "tool_calls"),
        ("tool.called", 2, "search"),
        ("tool.responded", 2, "search"),
        ("llm.called", 3, None),
        ("llm.responded", 3, "tool_calls"),
        ("tool.called", 4, "search"),
        ("tool.responded", 4, "search"),
        ("llm.called", 5, None),
        ("llm.responded", 5, "tool_calls"),
        ("tool.called", 6, "search"),
        ("tool.responded", 6, "search"),
        ("llm.called", 7, None),
        ("llm.responded", 7, "stop"),
        ("run.completed", 7, "final_answer"),
    ]
    responded = [e["payload"] for e in researcher if e["event_type"] == "llm.responded"]
    assert [p["prompt_tokens"] for p in responded] == [200, 400, 600, 900]
    assert [p["completion_tokens"] for p in responded] == [9, 9, 9, 5]
    assert researcher[0]["payload"]["model"] == "gpt-4o-mini"
    assert {e["payload"]["model"] for e in researcher if e["event_type"] == "llm.called"} == {"gpt-4o-mini"}


def test_llm_failure_errors_the_agent_and_the_crew(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    crew = two_agent_crew([RuntimeError("model unavailable")])
    with pytest.raises(RuntimeError):
        crew.kickoff(inputs={"topic": "t"})
    events = delivered(ingest, crew_dt, runs=2)
    (crew_run,) = _runs(events, "crew")
    assert not _runs(events, "crew.senior-writer")  # the second task never ran
    # CrewAI 1.15 retries a failed agent execution twice (max_retry_limit=2):
    # three attempts, each its own errored run under the crew, each naming
    # the exception the model raised (CrewAI's events carry only its text).
    attempts = _runs(events, "crew.researcher")
    assert len(attempts) == 3
    for researcher in attempts:
        assert shape(researcher)[2:] == [
            ("llm.called", 1, None),
            ("llm.responded", 1, "error"),
            ("run.errored", 1, "RuntimeError"),
        ]
        # The real exception class, on the failed call and on the run.
        (failed,) = [e["payload"] for e in researcher if e["event_type"] == "llm.responded"]
        assert failed["error_type"] == "RuntimeError" and len(failed["error_hash"]) == 64
        assert researcher[0]["parent_run_id"] == crew_run[0]["run_id"]
    # The crew's error type is the exception class CrewAI reported for the task.
    assert shape(crew_run) == [("run.started", 0, None), ("run.errored", 0, "RuntimeError")]
    assert len(crew_run[-1]["payload"]["error_hash"]) == 64
    assert all(e["timestamp"] <= crew_run[-1]["timestamp"] for e in events)  # the crew's end is last


def test_concurrent_crews_keep_their_runs_apart(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    crews = {
        "search": two_agent_crew([react("search", {"query": str(i)}) for i in range(3)] + [final("s")]),
        "lookup": two_agent_crew([react("lookup", {"query": str(i)}) for i in range(3)] + [final("l")], tools=[lookup]),
    }
    barrier = threading.Barrier(2)
    results: dict[str, str] = {}

    def kick(name: str) -> None:
        barrier.wait()
        results[name] = crews[name].kickoff(inputs={"topic": name}).raw

    threads = [threading.Thread(target=kick, args=(name,)) for name in crews]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {"search": "written", "lookup": "written"}
    events = delivered(ingest, crew_dt, runs=6)
    crew_runs = _runs(events, "crew")
    researchers = _runs(events, "crew.researcher")
    assert len(crew_runs) == 2 and len(researchers) == 2 and len(_runs(events, "crew.senior-writer")) == 2
    crew_ids = {run[0]["run_id"] for run in crew_runs}
    for run in researchers:
        tools = {e["payload"]["tool_name"] for e in run if e["event_type"] == "tool.called"}
        assert len(tools) == 1 and len([e for e in run if e["event_type"] == "tool.called"]) == 3
        assert [e["step_index"] for e in run if e["event_type"].endswith("called")] == list(range(1, 8))
        assert run[-1]["event_type"] == "run.completed"
    # each crew's two agents hang under that crew, one researcher per crew
    parents = [run[0]["parent_run_id"] for run in researchers]
    assert set(parents) == crew_ids


async def test_kickoff_async_with_an_async_task(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    researcher = Agent(
        role="Researcher",
        goal="g",
        backstory="b",
        tools=[search],
        cache=False,
        llm=ScriptedLLM(model="m1", script=[react("search", {"query": "q"}), final("r")]),
    )
    checker = Agent(
        role="Checker",
        goal="g",
        backstory="b",
        tools=[lookup],
        cache=False,
        llm=ScriptedLLM(model="m2", script=[react("lookup", {"query": "q"}), final("c")]),
    )
    writer = Agent(role="Writer", goal="g", backstory="b", llm=ScriptedLLM(model="m3", script=[final("w")]))
    research = Task(description="research", expected_output="x", agent=researcher, async_execution=True)
    check = Task(description="check", expected_output="x", agent=checker, async_execution=True)
    write = Task(description="write", expected_output="x", agent=writer, context=[research, check])
    crew = Crew(agents=[researcher, checker, writer], tasks=[research, check, write])
    result = await crew.kickoff_async()
    assert result.raw == "w"
    events = delivered(ingest, crew_dt, runs=4)
    (crew_run,) = _runs(events, "crew")
    for role, tool in (("crew.researcher", "search"), ("crew.checker", "lookup")):
        (run,) = _runs(events, role)
        assert run[0]["parent_run_id"] == crew_run[0]["run_id"]
        assert [e["payload"]["tool_name"] for e in run if e["event_type"] == "tool.called"] == [tool]
        assert run[-1]["event_type"] == "run.completed"
    (writer_run,) = _runs(events, "crew.writer")
    assert shape(writer_run)[-1] == ("run.completed", 1, "final_answer")
    assert all(e["timestamp"] <= crew_run[-1]["timestamp"] for e in events)


def test_hierarchical_delegation_nests_the_coworker(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    manager_llm = ScriptedLLM(
        model="manager-model",
        script=[
            react("Delegate work to coworker", {"task": "find it", "context": "none", "coworker": "Researcher"}),
            final("managed"),
        ],
    )
    worker_llm = ScriptedLLM(model="m1", script=[react("search", {"query": "q"}), final("found")])
    researcher = Agent(role="Researcher", goal="g", backstory="b", tools=[search], cache=False, llm=worker_llm)
    task = Task(description="find it", expected_output="x")
    crew = Crew(agents=[researcher], tasks=[task], process=Process.hierarchical, manager_llm=manager_llm)
    assert crew.kickoff().raw == "managed"
    events = delivered(ingest, crew_dt, runs=3)
    (crew_run,) = _runs(events, "crew")
    (manager,) = _runs(events, "crew.crew-manager")
    (worker,) = _runs(events, "crew.researcher")
    assert manager[0]["parent_run_id"] == crew_run[0]["run_id"]
    assert worker[0]["parent_run_id"] == manager[0]["run_id"]
    assert [e["payload"]["tool_name"] for e in manager if e["event_type"] == "tool.called"] == [
        "Delegate work to coworker"
    ]
    assert [e["payload"]["tool_name"] for e in worker if e["event_type"] == "tool.called"] == ["search"]
    assert all(e["timestamp"] <= crew_run[-1]["timestamp"] for e in events)
