"""Issue 16 point 1 on a real crew: a ``human_input=True`` task. CrewAI
1.15 blocks on ``input()`` inside the agent's execution (no pause, no
resume), so the run stays one run with the wait inside it: the human's
feedback leads to another model call of the same run."""

from __future__ import annotations

import io
import time

import pytest
from crewai import Agent, Crew, Task

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer

from .crews import ScriptedLLM, final
from .wire import by_run, delivered, shape


class SlowReader(io.StringIO):
    """A terminal where the human takes a moment to type each line."""

    def readline(self, size: int | None = -1) -> str:
        time.sleep(0.3)
        return super().readline(size)


def test_human_feedback_stays_inside_the_run(
    crew_dt: Dunetrace, ingest: IngestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The human asks for a change once, then accepts (an empty line).
    monkeypatch.setattr("sys.stdin", SlowReader("Add the source, please.\n\n"))
    llm = ScriptedLLM(model="scripted", script=[final("draft"), final("draft, with its source")])
    agent = Agent(role="Writer", goal="Write", backstory="b", llm=llm)
    task = Task(name="write", description="Write it", expected_output="text", agent=agent, human_input=True)
    assert Crew(agents=[agent], tasks=[task]).kickoff().raw == "draft, with its source"
    runs = by_run(delivered(ingest, crew_dt, runs=2))
    assert sorted(key.split("#")[0] for key in runs) == ["crew", "crew.writer"]
    (writer,) = [v for k, v in runs.items() if k.startswith("crew.writer#")]
    assert shape(writer)[2:] == [
        ("llm.called", 1, None),
        ("llm.responded", 1, "stop"),
        ("llm.called", 2, None),
        ("llm.responded", 2, "stop"),
        ("run.completed", 2, "final_answer"),
    ]
    # The human's time is between the two calls, inside the run.
    responded = next(e for e in writer if e["event_type"] == "llm.responded")
    second = [e for e in writer if e["event_type"] == "llm.called"][1]
    assert second["timestamp"] - responded["timestamp"] >= 0.3
