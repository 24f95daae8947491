"""Issue 16 point 2 on real crews: a kickoff interrupted during a model or
tool call (``KeyboardInterrupt``, ``task.cancel()``, an ``asyncio``
timeout) answers the call as failed and ends its runs ``cancelled``, with
nothing left open and nothing after the end."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest
from crewai import Agent, Crew, Task
from crewai.llms.base_llm import llm_call_context
from crewai.tools import tool

from dunetrace import Dunetrace
from dunetrace.exit_reasons import CANCELLED
from dunetrace.integrations.crewai import adapter
from tests.ingest_server import IngestServer

from .crews import ScriptedLLM, final, react, search
from .wire import by_run, delivered, shape


class SlowLLM(ScriptedLLM):
    """A model that takes its time. CrewAI 1.15 runs an agent's steps in
    worker threads even under ``akickoff``: a cancellation stops the
    awaiting kickoff while the call runs on, and what it reports after the
    run ended is dropped."""

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        with llm_call_context():
            self._emit_call_started_event(
                messages=messages, from_task=kwargs.get("from_task"), from_agent=kwargs.get("from_agent")
            )
        time.sleep(2.0)
        return final("too late")


@tool("wait_for_ctrl_c")
def interrupted_tool(query: str) -> str:
    """A tool the user interrupts while it runs."""
    raise KeyboardInterrupt


def _one_agent_crew(llm: Any, tools: list[Any] | None = None) -> Crew:
    agent = Agent(role="Researcher", goal="Find", backstory="b", llm=llm, tools=tools or [search], cache=False)
    return Crew(agents=[agent], tasks=[Task(name="find", description="Find it", expected_output="x", agent=agent)])


def _assert_cancelled(
    events: list[dict[str, Any]], open_call: str, error_type: str = "CancelledError"
) -> list[dict[str, Any]]:
    runs = by_run(events)
    (crew_run,) = [v for k, v in runs.items() if k.startswith("crew#")]
    (researcher,) = [v for k, v in runs.items() if k.startswith("crew.researcher#")]
    for run in (crew_run, researcher):
        assert run[-1]["event_type"] == "run.completed" and run[-1]["payload"]["exit_reason"] == CANCELLED
        assert sum(e["event_type"] in ("run.completed", "run.errored") for e in run) == 1
    # The call the interruption cut is answered, as failed, before the end.
    called = [e["step_index"] for e in researcher if e["event_type"] == f"{open_call}.called"]
    answered = [e for e in researcher if e["event_type"] == f"{open_call}.responded"]
    assert [e["step_index"] for e in answered] == called
    cut = answered[-1]["payload"]
    assert cut.get("success", False) is False and cut["error_type"] == error_type
    if open_call == "llm":
        assert cut["finish_reason"] == "error"
    assert crew_run[-1]["timestamp"] >= max(e["timestamp"] for e in researcher)
    return researcher


def _in_a_thread(*crews: Crew) -> list[BaseException | str]:
    """Kick the crews off one after another in a thread of their own: CrewAI
    1.15 leaves its event scope open in a thread whose kickoff was
    interrupted, which must not leak into the other tests."""
    outcomes: list[BaseException | str] = []

    def kick() -> None:
        for crew in crews:
            try:
                outcomes.append(crew.kickoff().raw)
            except BaseException as exc:
                outcomes.append(exc)

    thread = threading.Thread(target=kick)
    thread.start()
    thread.join(60)
    return outcomes


def test_ctrl_c_during_a_model_call(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    crew = _one_agent_crew(ScriptedLLM(model="scripted", script=[react("search", {"query": "q"}), KeyboardInterrupt()]))
    (outcome,) = _in_a_thread(crew)
    assert isinstance(outcome, KeyboardInterrupt)
    researcher = _assert_cancelled(delivered(ingest, crew_dt, runs=2), "llm")
    assert [kind for kind, _, _ in shape(researcher)][2:] == [
        "llm.called",
        "llm.responded",
        "tool.called",
        "tool.responded",
        "llm.called",
        "llm.responded",
        "run.completed",
    ]


def test_ctrl_c_during_a_tool_call(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    llm = ScriptedLLM(model="scripted", script=[react("wait_for_ctrl_c", {"query": "q"}), final("x")])
    crew = _one_agent_crew(llm, tools=[interrupted_tool])
    (outcome,) = _in_a_thread(crew)
    assert isinstance(outcome, KeyboardInterrupt)
    # CrewAI 1.15 reports the tool as finished on its way out: the
    # interruption's class says it did not.
    _assert_cancelled(delivered(ingest, crew_dt, runs=2), "tool", "KeyboardInterrupt")


def test_the_next_kickoff_after_ctrl_c_is_a_run_of_its_own(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    # CrewAI 1.15 names the interrupted kickoff as the next one's parent
    # scope (its scope stays open in that thread); the next is no child of it.
    interrupted = _one_agent_crew(ScriptedLLM(model="scripted", script=[KeyboardInterrupt()]))
    after = _one_agent_crew(ScriptedLLM(model="scripted", script=[final("fine")]))
    first, second = _in_a_thread(interrupted, after)
    assert isinstance(first, KeyboardInterrupt) and second == "fine"
    crew_runs = sorted(
        (v for k, v in by_run(delivered(ingest, crew_dt, runs=4)).items() if k.startswith("crew#")),
        key=lambda run: run[0]["timestamp"],
    )
    assert [run[-1]["payload"]["exit_reason"] for run in crew_runs] == [CANCELLED, "final_answer"]
    assert crew_runs[1][0]["parent_run_id"] is None


def test_a_timeout_around_akickoff(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    crew = _one_agent_crew(SlowLLM(model="slow", script=[final("unused")]))

    async def main() -> None:
        await asyncio.wait_for(crew.akickoff(), timeout=1.0)

    with pytest.raises(TimeoutError):
        asyncio.run(main())
    _assert_cancelled(delivered(ingest, crew_dt, runs=2), "llm")


def test_task_cancel_of_akickoff(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    crew = _one_agent_crew(SlowLLM(model="slow", script=[final("unused")]))

    async def main() -> None:
        task = asyncio.create_task(crew.akickoff())
        await asyncio.sleep(1.0)
        task.cancel()
        await task

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(main())
    _assert_cancelled(delivered(ingest, crew_dt, runs=2), "llm")


def test_uninstrument_puts_crewais_methods_back(dt: Dunetrace) -> None:
    from crewai.events import crewai_event_bus

    from dunetrace.integrations.crewai import instrument, uninstrument

    originals = (Crew.__dict__["kickoff"], Crew.__dict__["akickoff"])
    instrument(dt, agent_id="crew")
    assert Crew.__dict__["kickoff"] is not originals[0]
    assert "emit" in vars(crewai_event_bus)  # the failure watch
    uninstrument(dt)
    assert (Crew.__dict__["kickoff"], Crew.__dict__["akickoff"]) == originals
    assert "emit" not in vars(crewai_event_bus)
    assert not adapter.installed(dt)


def test_max_execution_time_errors_the_agent_with_its_timeout(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    # CrewAI's own limit, not a cancellation from outside: the agent's run
    # errors with the TimeoutError CrewAI raises, its model call (which runs
    # on in CrewAI's worker thread) answered as failed before that end.
    agent = Agent(
        role="Researcher",
        goal="Find",
        backstory="b",
        llm=SlowLLM(model="slow", script=[final("unused")]),
        max_execution_time=1,
    )
    crew = Crew(agents=[agent], tasks=[Task(name="find", description="Find it", expected_output="x", agent=agent)])
    with pytest.raises(TimeoutError):
        crew.kickoff()
    runs = by_run(delivered(ingest, crew_dt, runs=2))
    (researcher,) = [v for k, v in runs.items() if k.startswith("crew.researcher#")]
    (crew_run,) = [v for k, v in runs.items() if k.startswith("crew#")]
    assert [kind for kind, _, _ in shape(researcher)][2:] == ["llm.called", "llm.responded", "run.errored"]
    assert researcher[3]["payload"]["finish_reason"] == "error"
    assert researcher[-1]["payload"]["error_type"] == "TimeoutError"
    assert crew_run[-1]["payload"]["error_type"] == "TimeoutError"
