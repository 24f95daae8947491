"""Issue 16 point 10 on a real crew: the real exception class on every
errored run and failed call, task guardrail rejections and ``max_iter`` as
exit reasons of their own, and an API error's HTTP status as an
external.signal."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from crewai import LLM, Agent, Crew, Task
from openai import OpenAI

from dunetrace import Dunetrace
from dunetrace.exit_reasons import FINAL_ANSWER, GUARDRAIL, MAX_ITERATIONS
from tests.ingest_server import IngestServer

from .crews import ScriptedLLM, broken, final, react, search
from .wire import by_run, delivered, shape


def _runs(events: list[dict[str, Any]], agent_id: str) -> list[list[dict[str, Any]]]:
    return [v for k, v in by_run(events).items() if k.split("#")[0] == agent_id]


def _ending(run: list[dict[str, Any]]) -> str:
    payload = run[-1]["payload"]
    return payload.get("exit_reason") or payload["error_type"]


def _one_agent_crew(llm: Any, **task_options: Any) -> Crew:
    agent = Agent(role="Researcher", goal="Find", backstory="b", llm=llm, tools=[search], cache=False, max_iter=8)
    task = Task(name="find", description="Find it", expected_output="x", agent=agent, **task_options)
    return Crew(agents=[agent], tasks=[task])


def _failing_openai_llm(status: int, body: dict[str, Any]) -> tuple[LLM, list[int]]:
    """``crewai.LLM`` whose OpenAI client gets ``status`` for every request
    (no retries in the client, so the test is quick)."""
    answered: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/input_tokens"):
            return httpx.Response(200, json={"object": "response.input_tokens", "input_tokens": 50})
        answered.append(status)
        return httpx.Response(status, json=body)

    llm = LLM(model="gpt-4o-mini", api_key="sk-fake")
    llm._client = OpenAI(
        api_key="sk-fake", max_retries=0, http_client=httpx.Client(transport=httpx.MockTransport(handle))
    )
    return llm, answered


@pytest.mark.parametrize(
    ("status", "signal", "error_class"),
    [(429, "rate_limit", "RateLimitError"), (400, "api_error", "BadRequestError")],
)
def test_api_error_names_its_class_and_http_status(
    crew_dt: Dunetrace, ingest: IngestServer, status: int, signal: str, error_class: str
) -> None:
    body = {"error": {"message": "secret provider text", "type": "invalid_request_error", "code": None}}
    llm, answered = _failing_openai_llm(status, body)
    crew = _one_agent_crew(llm)
    with pytest.raises(Exception) as raised:  # CrewAI re-raises the provider's error
        crew.kickoff()
    assert answered and set(answered) == {status}
    events = delivered(ingest, crew_dt, runs=2)
    attempts = _runs(events, "crew.researcher")
    assert attempts  # CrewAI retries the agent's execution: each attempt a run
    for researcher in attempts:
        # CrewAI 1.15 may try the model twice in one attempt: each try is a
        # call of its own, answered once, as failed.
        called = [e["step_index"] for e in researcher if e["event_type"] == "llm.called"]
        failed = [e for e in researcher if e["event_type"] == "llm.responded"]
        assert called and [e["step_index"] for e in failed] == called
        assert {e["payload"]["finish_reason"] for e in failed} == {"error"}
        assert {e["payload"]["error_type"] for e in failed} == {error_class}
        signals = [
            e for e in researcher if e["event_type"] == "external.signal" and e["payload"]["signal_name"] == signal
        ]
        assert [e["step_index"] for e in signals] == called
        assert signals[0]["payload"] == {
            "signal_name": signal,
            "source": "crewai",
            "http_status": status,
            "error_type": error_class,
        }
        assert researcher[-1]["event_type"] == "run.errored"
    (crew_run,) = _runs(events, "crew")
    assert crew_run[-1]["payload"]["error_type"] == type(raised.value).__name__
    assert "secret provider text" not in json.dumps(events)


def test_a_tool_error_crewai_handles_names_its_class(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    llm = ScriptedLLM(model="scripted", script=[react("broken", {"query": "q"}), final("gave up on the tool")])
    agent = Agent(role="Researcher", goal="Find", backstory="b", llm=llm, tools=[broken], cache=False)
    crew = Crew(agents=[agent], tasks=[Task(name="find", description="Find it", expected_output="x", agent=agent)])
    assert crew.kickoff().raw == "gave up on the tool"
    (researcher,) = _runs(delivered(ingest, crew_dt, runs=2), "crew.researcher")
    failed = [e["payload"] for e in researcher if e["event_type"] == "tool.responded"]
    assert failed and all(p["success"] is False and p["tool_name"] == "broken" for p in failed)
    assert {p["error_type"] for p in failed} == {"RuntimeError"}
    assert _ending(researcher) == FINAL_ANSWER


def test_guardrail_rejections_end_as_guardrail(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    llm = ScriptedLLM(model="scripted", script=[final("draft")])
    crew = _one_agent_crew(llm, guardrail=lambda output: (False, "not good enough"), guardrail_max_retries=1)
    with pytest.raises(Exception, match="guardrail"):
        crew.kickoff()
    events = delivered(ingest, crew_dt, runs=3)
    attempts = _runs(events, "crew.researcher")
    # The first answer and the one retry, both rejected.
    assert [_ending(run) for run in attempts] == [GUARDRAIL, GUARDRAIL]
    assert [e["event_type"] for e in attempts[0]][-1] == "run.completed"
    (crew_run,) = _runs(events, "crew")
    assert shape(crew_run) == [("run.started", 0, None), ("run.completed", 0, GUARDRAIL)]


def test_a_guardrail_that_accepts_the_retry_ends_as_an_answer(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    # A lambda: CrewAI 1.15 rejects a guardrail whose annotations it cannot read.
    long_enough = lambda output: (True, output) if len(output.raw) > 10 else (False, "too short")  # noqa: E731
    llm = ScriptedLLM(model="scripted", script=[final("short"), final("a longer answer")])
    crew = _one_agent_crew(llm, guardrail=long_enough, guardrail_max_retries=2)
    assert crew.kickoff().raw == "a longer answer"
    events = delivered(ingest, crew_dt, runs=3)
    assert [_ending(run) for run in _runs(events, "crew.researcher")] == [GUARDRAIL, FINAL_ANSWER]
    (crew_run,) = _runs(events, "crew")
    assert _ending(crew_run) == FINAL_ANSWER


def test_max_iter_ends_as_max_iterations(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    # The model never stops calling the tool; CrewAI stops it after max_iter
    # iterations and asks once more for a final answer.
    script = [react("search", {"query": str(i)}) for i in range(6)] + [final("forced")]
    agent = Agent(
        role="Researcher",
        goal="Find",
        backstory="b",
        llm=ScriptedLLM(model="scripted", script=script),
        tools=[search],
        cache=False,
        max_iter=2,
    )
    crew = Crew(agents=[agent], tasks=[Task(name="find", description="Find it", expected_output="x", agent=agent)])
    crew.kickoff()
    events = delivered(ingest, crew_dt, runs=2)
    (researcher,) = _runs(events, "crew.researcher")
    assert _ending(researcher) == MAX_ITERATIONS
    assert [e["payload"]["tool_name"] for e in researcher if e["event_type"] == "tool.called"] == ["search"] * 2
    (crew_run,) = _runs(events, "crew")
    assert _ending(crew_run) == FINAL_ANSWER  # the crew still answered


def test_an_agent_within_max_iter_ends_as_final_answer(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    script = [react("search", {"query": "a"}), final("done")]
    agent = Agent(
        role="Researcher",
        goal="Find",
        backstory="b",
        llm=ScriptedLLM(model="scripted", script=script),
        tools=[search],
        cache=False,
        max_iter=2,
    )
    crew = Crew(agents=[agent], tasks=[Task(name="find", description="Find it", expected_output="x", agent=agent)])
    assert crew.kickoff().raw == "done"
    (researcher,) = _runs(delivered(ingest, crew_dt, runs=2), "crew.researcher")
    assert _ending(researcher) == FINAL_ANSWER
