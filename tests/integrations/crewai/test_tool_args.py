"""Issue 16 point 8: a CrewAI agent reference among a tool's arguments does
not make identical calls hash differently, so a loop is seen as a loop.

CrewAI 1.15 JSON-encodes a tool's input before the tool runs, so a working
crew names an agent by role (the delegation tools' ``coworker``); objects
(an agent, task, crew, LLM, tool) can reach a tool event only through a
hook or custom code, and are named by what does not change."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from crewai import Agent, Crew, Task
from hypothesis import given, settings
from hypothesis import strategies as st

from dunetrace import Dunetrace
from dunetrace.integrations.crewai.readers import stable_args
from tests.ingest_server import IngestServer

from .crews import ScriptedLLM, answer_reply, final, openai_llm, react, search, tool_call_reply
from .wire import by_run, delivered


@pytest.fixture
def dt(ingest: IngestServer) -> Iterator[Dunetrace]:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05, detectors=True)  # the suite turns them off
    yield client
    client.shutdown(timeout=5)


def test_repeated_delegation_to_a_coworker_is_a_loop(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    # The manager hands the same work to its coworker, by role, four times.
    delegate = {"task": "Write it up", "context": "the facts", "coworker": "Senior Writer"}
    manager = Agent(
        role="Manager",
        goal="Get it written",
        backstory="b",
        llm=ScriptedLLM(model="scripted-1", script=[react("Delegate work to coworker", delegate)] * 4 + [final("ok")]),
        allow_delegation=True,
        max_iter=8,
    )
    writer = Agent(
        role="Senior Writer",
        goal="Write",
        backstory="b",
        llm=ScriptedLLM(model="scripted-2", script=[final("written")]),
    )
    task = Task(name="deliver", description="Deliver the text", expected_output="text", agent=manager)
    assert Crew(agents=[manager, writer], tasks=[task]).kickoff().raw == "ok"
    runs = by_run(delivered(ingest, crew_dt, runs=6))
    (manager_run,) = [v for k, v in runs.items() if k.startswith("crew.manager#")]
    called = [e["payload"] for e in manager_run if e["event_type"] == "tool.called"]
    assert [p["tool_name"] for p in called] == ["Delegate work to coworker"] * 4
    assert len({p["args_hash"] for p in called}) == 1
    # CrewAI 1.15 runs the first; it refuses each exact repeat (no tool
    # event of its own): reported as failed calls, so the loop shows.
    responded = [e["payload"]["success"] for e in manager_run if e["event_type"] == "tool.responded"]
    assert responded == [True, False, False, False]
    signals = [e["payload"]["signal_name"] for e in manager_run if e["event_type"] == "external.signal"]
    assert "TOOL_LOOP" in signals
    # The delegation that ran is the coworker's run, a child of the manager's.
    (writer_run,) = [v for k, v in runs.items() if k.startswith("crew.senior-writer#")]
    assert writer_run[0]["parent_run_id"] == manager_run[0]["run_id"]


def test_identical_native_tool_calls_hash_alike(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    # The model asks for the same call until CrewAI 1.15 stops it (after
    # five identical calls with identical results), then answers.
    replies = [tool_call_reply(n, "search", {"query": "same"}) for n in range(1, 6)]
    llm, _ = openai_llm([*replies, answer_reply("done", 900)])
    agent = Agent(role="Researcher", goal="Find", backstory="b", llm=llm, tools=[search], cache=False)
    crew = Crew(agents=[agent], tasks=[Task(name="find", description="Find it", expected_output="x", agent=agent)])
    assert crew.kickoff().raw == "done"
    runs = by_run(delivered(ingest, crew_dt, runs=2))
    (researcher,) = [v for k, v in runs.items() if k.startswith("crew.researcher#")]
    called = [e["payload"] for e in researcher if e["event_type"] == "tool.called"]
    assert len(called) == 5 and len({p["args_hash"] for p in called}) == 1
    responded = [e["payload"]["success"] for e in researcher if e["event_type"] == "tool.responded"]
    assert responded == [True] * 5  # CrewAI's stop is no call of its own
    signals = [e["payload"]["signal_name"] for e in researcher if e["event_type"] == "external.signal"]
    assert "TOOL_LOOP" in signals
    # Stopped by CrewAI's limit, the agent is asked for its answer at once.
    assert researcher[-1]["payload"]["exit_reason"] == "max_iterations"


def test_framework_objects_are_named_by_what_does_not_change() -> None:
    agent = Agent(role="Researcher", goal="Find", backstory="b", llm="gpt-4o-mini")
    task = Task(name="find", description="Find it", expected_output="x", agent=agent)
    crew = Crew(agents=[agent], tasks=[task], name="team")
    before = stable_args({"q": "x", "agent": agent, "context": [task, crew], "n": 1})
    agent.tools_results.append({"result": "something new"})  # the agent works on
    after = stable_args({"q": "x", "agent": agent, "context": [task, crew], "n": 1})
    assert (
        before
        == after
        == {
            "q": "x",
            "agent": "<crewai agent Researcher>",
            "context": ["<crewai task find>", "<crewai crew team>"],
            "n": 1,
        }
    )


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)


@given(_json)
@settings(max_examples=200, deadline=None)
def test_plain_arguments_are_left_as_they_are(args: Any) -> None:
    assert stable_args(args) == args
