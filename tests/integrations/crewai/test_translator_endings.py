"""The translator's endings with plain fakes (no CrewAI): guardrail
verdicts, cancellation, refused and unknown tool calls, and events whose
fields are missing or None, which must change nothing and raise nothing."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from dunetrace import Dunetrace
from dunetrace.integrations.crewai.translator import Translator
from tests.ingest_server import IngestServer

from .test_translator import Feed


@pytest.fixture
def feed(dt: Dunetrace) -> Feed:
    translator = Translator(dt, "fake")
    translator.forced_answer_text = "answer now"
    translator.refused_call_text = "I tried reusing the same input"
    return Feed(translator)


def _events(dt: Dunetrace, ingest: IngestServer, agent_id: str) -> list[dict[str, Any]]:
    assert dt.flush(5)
    return [e for e in ingest.events if e["agent_id"] == agent_id]


def test_a_rejected_answer_then_an_accepted_one(feed: Feed, dt: Dunetrace, ingest: IngestServer) -> None:
    crew_obj = SimpleNamespace(id="c1", agents=[])
    crew = feed("crew_kickoff_started", inputs=None, crew=crew_obj)
    task = SimpleNamespace(id="t1", name="analyse", description="d", guardrail=lambda out: (True, out))
    for verdict in (False, True):
        agent = feed.agent(crew)
        agent.task = task
        feed("agent_execution_completed", agent, started=agent, agent=agent.agent, task=task)
        feed("llm_guardrail_completed", crew, from_task=task, success=verdict)
    feed("crew_kickoff_completed", started=crew)
    endings = [
        e["payload"]["exit_reason"] for e in _events(dt, ingest, "fake.analyst") if e["event_type"] == "run.completed"
    ]
    assert endings == ["guardrail", "final_answer"]
    (crew_end,) = [e for e in _events(dt, ingest, "fake") if e["event_type"] == "run.completed"]
    assert crew_end["payload"]["exit_reason"] == "final_answer"


def test_an_answer_waiting_for_a_verdict_ends_with_its_crew(feed: Feed, dt: Dunetrace, ingest: IngestServer) -> None:
    crew = feed("crew_kickoff_started", inputs=None, crew=SimpleNamespace(id="c1", agents=[]))
    agent = feed.agent(crew)
    task = SimpleNamespace(id="t1", guardrails=[object()])
    feed("agent_execution_completed", agent, started=agent, agent=agent.agent, task=task)
    feed("crew_kickoff_completed", started=crew)
    (end,) = [e for e in _events(dt, ingest, "fake.analyst") if e["event_type"] == "run.completed"]
    assert end["payload"]["exit_reason"] == "final_answer"


def test_refused_repeats_and_the_forced_answer(feed: Feed, dt: Dunetrace, ingest: IngestServer) -> None:
    crew = feed("crew_kickoff_started", inputs=None, crew=SimpleNamespace(id="c1", agents=[]))
    agent = feed.agent(crew)
    feed("tool_usage_started", agent, tool_name="search", tool_args={"q": 1})
    refusal = {"role": "user", "content": "I tried reusing the same input, I must stop."}
    feed("llm_call_started", agent, call_id="a", messages=[refusal, {"role": "user", "content": "go on"}])
    feed("llm_call_started", agent, call_id="b", messages=[refusal, refusal, {"role": "user", "content": "answer now"}])
    feed("agent_execution_completed", agent, started=agent, agent=agent.agent, task=agent.task)
    events = _events(dt, ingest, "fake.analyst")
    tools = [(e["event_type"], e["payload"].get("success")) for e in events if e["event_type"].startswith("tool.")]
    # The call that ran (answered as failed when the run ends, never having
    # returned), and one failed call per refusal message seen.
    assert tools == [
        ("tool.called", None),
        ("tool.called", None),
        ("tool.responded", False),
        ("tool.called", None),
        ("tool.responded", False),
        ("tool.responded", False),
    ]
    hashes = {e["payload"]["args_hash"] for e in events if e["event_type"] == "tool.called"}
    assert len(hashes) == 1
    assert events[-1]["payload"]["exit_reason"] == "max_iterations"


def test_missing_fields_change_nothing(feed: Feed, dt: Dunetrace, ingest: IngestServer) -> None:
    translator = feed.assembler
    translator.cancelled(None)
    translator.cancelled(SimpleNamespace(id="never-started"))
    for kind in ("llm_guardrail_completed", "tool_selection_error", "tool_failure_detected", "task_completed"):
        feed(kind, None)
        feed(kind, "unknown-parent", tool_name=None, task=None, from_task=None, success=None, failure=None)
    crew = feed("crew_kickoff_started", inputs=None, crew=SimpleNamespace(id="c1", agents=[]))
    agent = feed.agent(crew)
    feed("tool_selection_error", agent, tool_name=None, tool_args=None, error=None)
    feed("llm_call_started", agent, call_id="x", messages=None)
    translator.cancelled(SimpleNamespace(id="c1"))
    events = _events(dt, ingest, "fake.analyst")
    assert [e["event_type"] for e in events][-5:] == [
        "tool.called",
        "tool.responded",
        "llm.called",
        "llm.responded",
        "run.completed",
    ]
    assert events[-1]["payload"]["exit_reason"] == "cancelled"
    assert events[-2]["payload"]["error_type"] == "CancelledError"
    assert translator.open_runs() == 0
