"""The offline example agent (``dunetrace.examples.openai_agent``) runs and
reports what it did."""

from __future__ import annotations

from dunetrace import Dunetrace
from dunetrace.examples import openai_agent
from tests.ingest_server import IngestServer


def test_example_reports_two_runs_with_tools_and_streamed_answers(dt: Dunetrace, ingest: IngestServer) -> None:
    answers = openai_agent.main(dt)
    assert answers == ["Lisbon: sunny, 21 C.", "Lisbon: sunny, 21 C. Oslo: light snow, -3 C."]
    assert openai_agent.EXTRA == "openai"
    assert dt.flush(5)
    events = ingest.events
    runs = {e["run_id"] for e in events}
    assert len(runs) == 2
    assert all(e["agent_id"] == openai_agent.AGENT_ID for e in events)
    finishes = [e["payload"]["finish_reason"] for e in events if e["event_type"] == "llm.responded"]
    assert finishes == ["tool_calls", "stop", "tool_calls", "stop"]
    assert all(
        e["payload"]["prompt_tokens"] > 0 and e["payload"]["completion_tokens"] > 0
        for e in events
        if e["event_type"] == "llm.responded"
    )
    assert [e["payload"]["tool_name"] for e in events if e["event_type"] == "tool.called"] == ["get_weather"] * 3
    assert [e["payload"]["exit_reason"] for e in events if e["event_type"] == "run.completed"] == ["final_answer"] * 2
