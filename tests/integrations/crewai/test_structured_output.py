"""Issue 16 point 7 on real crews: ``output_pydantic`` / ``output_json``
tasks are not reported as tools, and their runs end as answers; a tool that
reports failure (CrewAI's ``ToolFailure``) is one failed call."""

from __future__ import annotations

import json
from typing import Any

import pytest
from crewai import Agent, Crew, Task
from crewai.tools import ToolFailure, tool
from pydantic import BaseModel

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer

from .crews import ScriptedLLM, answer_reply, final, openai_llm, react, search, tool_call_reply
from .wire import by_run, delivered


class Finding(BaseModel):
    answer: str
    confidence: float


def _runs(events: list[dict[str, Any]], agent_id: str) -> list[list[dict[str, Any]]]:
    return [v for k, v in by_run(events).items() if k.split("#")[0] == agent_id]


@pytest.mark.parametrize("output", ["output_pydantic", "output_json"])
def test_structured_output_is_no_tool_and_ends_as_an_answer(
    crew_dt: Dunetrace, ingest: IngestServer, output: str
) -> None:
    structured = json.dumps({"answer": "42", "confidence": 0.9})
    llm, sent = openai_llm([tool_call_reply(1, "search", {"query": "q"}), answer_reply(structured, 400)] * 2)
    agent = Agent(role="Researcher", goal="Find", backstory="b", llm=llm, tools=[search], cache=False)
    task = Task(name="find", description="Find it", expected_output="a finding", agent=agent, **{output: Finding})
    result = Crew(agents=[agent], tasks=[task]).kickoff()
    assert (result.pydantic if output == "output_pydantic" else result.json_dict) is not None
    events = delivered(ingest, crew_dt, runs=2)
    (researcher,) = _runs(events, "crew.researcher")
    (crew_run,) = _runs(events, "crew")
    # Whatever CrewAI offered the model to shape its answer, the agent's
    # tools are its own.
    offered = {t["function"]["name"] for body in sent for t in body.get("tools", [])}
    assert offered == {"search"}  # CrewAI 1.15 converts the answer afterwards
    assert researcher[0]["payload"]["tools"] == ["search"] and crew_run[0]["payload"]["tools"] == ["search"]
    called = {e["payload"]["tool_name"] for e in researcher if e["event_type"] == "tool.called"}
    assert called == {"search"}
    assert researcher[-1]["payload"]["exit_reason"] == "final_answer"
    assert crew_run[-1]["payload"]["exit_reason"] == "final_answer"


def test_an_answer_that_fails_its_schema_is_a_failed_call(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    # An agent without tools: CrewAI 1.15 asks for the schema as the model's
    # response format, validates the answer inside the LLM call, and a
    # mismatch fails the call and that execution (which CrewAI retries).
    structured = json.dumps({"answer": "42", "confidence": 0.9})
    llm, sent = openai_llm([answer_reply("The answer is 42, fairly sure.", 300), answer_reply(structured, 350)])
    agent = Agent(role="Researcher", goal="Find", backstory="b", llm=llm, cache=False)
    task = Task(name="find", description="Find it", expected_output="a finding", agent=agent, output_pydantic=Finding)
    result = Crew(agents=[agent], tasks=[task]).kickoff()
    assert result.pydantic == Finding(answer="42", confidence=0.9)
    assert all("response_format" in body and "tools" not in body for body in sent)
    events = delivered(ingest, crew_dt, runs=3)
    first, second = sorted(_runs(events, "crew.researcher"), key=lambda run: run[0]["timestamp"])
    assert first[0]["payload"]["tools"] == [] == second[0]["payload"]["tools"]
    (failed,) = [e["payload"] for e in first if e["event_type"] == "llm.responded"]
    assert (failed["finish_reason"], failed["error_type"]) == ("error", "ValidationError")
    assert first[-1]["payload"]["error_type"] == "ValidationError"
    assert second[-1]["payload"]["exit_reason"] == "final_answer"
    (crew_run,) = _runs(events, "crew")
    assert crew_run[-1]["payload"]["exit_reason"] == "final_answer"


@tool("fetch")
def fetch(url: str) -> Any:
    """Fetch a page; says so when it could not."""
    return ToolFailure(message=f"could not reach {url}", code="unreachable")


def test_a_tool_that_reports_failure_is_one_failed_call(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    llm = ScriptedLLM(model="scripted", script=[react("fetch", {"url": "u"}), final("without the page")])
    agent = Agent(role="Researcher", goal="Find", backstory="b", llm=llm, tools=[fetch], cache=False)
    crew = Crew(agents=[agent], tasks=[Task(name="find", description="Find it", expected_output="x", agent=agent)])
    assert crew.kickoff().raw == "without the page"
    (researcher,) = _runs(delivered(ingest, crew_dt, runs=2), "crew.researcher")
    responded = [e["payload"] for e in researcher if e["event_type"] == "tool.responded"]
    assert [(p["tool_name"], p["success"], p["error_type"]) for p in responded] == [("fetch", False, "ToolFailure")]
    assert researcher[-1]["payload"]["exit_reason"] == "final_answer"
