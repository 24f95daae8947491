"""The event assembler with plain fakes: no CrewAI involved."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from dunetrace import Dunetrace
from dunetrace.integrations.crewai import translator as _assembler
from dunetrace.integrations.crewai.translator import Translator
from tests.ingest_server import IngestServer

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


class Feed:
    """Builds CrewAI-shaped events with ids and sequence numbers."""

    def __init__(self, assembler: Translator) -> None:
        self.assembler = assembler
        self.seq = itertools.count(1)
        self.ids = itertools.count(1)
        self.now = 0.0  # seconds after T0; CrewAI's clock moves on with every event

    def __call__(
        self, type: str, parent: Any = None, started: Any = None, at: float | None = None, **fields: Any
    ) -> Any:
        self.now = at if at is not None else self.now + 0.001
        event = SimpleNamespace(
            type=type,
            event_id=f"e{next(self.ids)}",
            parent_event_id=getattr(parent, "event_id", parent),
            started_event_id=getattr(started, "event_id", started),
            emission_sequence=next(self.seq),
            timestamp=T0 + timedelta(seconds=self.now),
            agent_id=None,
            task_id=None,
            **fields,
        )
        self.assembler.handle(event, None)
        return event

    def agent(self, crew: Any, role: str = "Analyst", tools: tuple[str, ...] = ("search",)) -> Any:
        agent = SimpleNamespace(id="a1", role=role, goal="g", backstory="b", llm=SimpleNamespace(model="m"), tools=[])
        task = SimpleNamespace(id="t1", name="analyse", description="Analyse {x}")
        task_event = self("task_started", crew)
        return self(
            "agent_execution_started",
            task_event,
            agent=agent,
            task=task,
            task_prompt="prompt",
            tools=[SimpleNamespace(name=n) for n in tools],
        )


@pytest.fixture
def feed(dt: Dunetrace) -> Feed:
    return Feed(Translator(dt, "fake"))


def _events(dt: Dunetrace, ingest: IngestServer) -> list[dict[str, Any]]:
    assert dt.flush(5)
    return ingest.events


def _types(events: list[dict[str, Any]], agent_id: str) -> list[tuple[str, int]]:
    return [(e["event_type"], e["step_index"]) for e in events if e["agent_id"] == agent_id]


def test_a_crew_becomes_a_tree_of_runs(feed: Feed, dt: Dunetrace, ingest: IngestServer) -> None:
    crew = feed("crew_kickoff_started", inputs={"q": 1}, crew=SimpleNamespace(agents=[]))
    agent = feed.agent(crew)
    llm = feed("llm_call_started", agent, model="m", call_id="c1", at=1)
    feed(
        "llm_call_completed",
        agent,
        llm,
        at=1.5,
        call_id="c1",
        usage={"prompt_tokens": 7, "completion_tokens": 3},
        finish_reason=None,
        response="ok",
        call_type=SimpleNamespace(value="llm_call"),
    )
    tool = feed("tool_usage_started", agent, tool_name="search", tool_args={"q": "x"}, at=2)
    feed(
        "tool_usage_finished",
        agent,
        tool,
        tool_name="search",
        tool_args={"q": "x"},
        output="found",
        started_at=T0 + timedelta(seconds=2),
        finished_at=T0 + timedelta(seconds=2.25),
        failure=None,
    )
    feed("agent_execution_completed", None, agent)
    feed("crew_kickoff_completed", None, crew)
    events = _events(dt, ingest)
    assert _types(events, "fake.analyst") == [
        ("run.started", 0),
        ("external.signal", 0),
        ("llm.called", 1),
        ("llm.responded", 1),
        ("tool.called", 2),
        ("tool.responded", 2),
        ("run.completed", 2),
    ]
    assert _types(events, "fake") == [("run.started", 0), ("run.completed", 0)]
    by_type = {e["event_type"]: e["payload"] for e in events if e["agent_id"] == "fake.analyst"}
    assert by_type["llm.responded"]["latency_ms"] == 500.0
    assert by_type["llm.responded"]["finish_reason"] == "stop"  # inferred: a plain completed call
    assert by_type["llm.responded"]["prompt_tokens"] == 7 and by_type["llm.responded"]["completion_tokens"] == 3
    assert by_type["tool.responded"] == {
        "tool_name": "search",
        "success": True,
        "output_length": 5,
        "latency_ms": 250.0,
        "from_cache": False,
    }
    assert by_type["run.started"]["tools"] == ["search"] and by_type["run.started"]["model"] == "m"
    # Events are translated after the fact: each carries CrewAI's time of it.
    stamps = {e["event_type"]: e["timestamp"] for e in events if e["agent_id"] == "fake.analyst"}
    assert stamps["llm.called"] == (T0 + timedelta(seconds=1)).timestamp()
    assert stamps["tool.called"] == (T0 + timedelta(seconds=2)).timestamp()
    # batches are per agent, so "last" is by time: the crew's end comes after everything
    last = max(events, key=lambda e: (e["timestamp"], e["event_type"] == "run.completed"))
    assert last["agent_id"] == "fake" and last["event_type"] == "run.completed"


def test_json_string_and_dict_args_hash_equal(feed: Feed, dt: Dunetrace, ingest: IngestServer) -> None:
    crew = feed("crew_kickoff_started", inputs=None)
    agent = feed.agent(crew)
    for args in ({"b": 2, "a": 1}, '{"a": 1, "b": 2}', '{"a": 1, "b": 3}'):
        tool = feed("tool_usage_started", agent, tool_name="search", tool_args=args)
        feed("tool_usage_finished", agent, tool, tool_name="search", output="", failure=None)
    hashes = [e["payload"]["args_hash"] for e in _events(dt, ingest) if e["event_type"] == "tool.called"]
    assert hashes[0] == hashes[1] != hashes[2]


def test_tool_retries_are_separate_failed_calls(feed: Feed, dt: Dunetrace, ingest: IngestServer) -> None:
    crew = feed("crew_kickoff_started", inputs=None)
    agent = feed.agent(crew)
    tool = feed("tool_usage_started", agent, tool_name="flaky", tool_args={"q": 1})
    feed("tool_usage_error", agent, tool, tool_name="flaky", tool_args={"q": 1}, error="boom")
    # retries reported without a started event of their own
    feed("tool_usage_error", agent, None, tool_name="flaky", tool_args={"q": 1}, error="boom")
    feed("tool_usage_error", agent, None, tool_name="flaky", tool_args={"q": 1}, error=ValueError("boom"))
    events = [e for e in _events(dt, ingest) if e["event_type"].startswith("tool.")]
    assert [(e["event_type"], e["step_index"]) for e in events] == [
        ("tool.called", 1),
        ("tool.responded", 1),
        ("tool.called", 2),
        ("tool.responded", 2),
        ("tool.called", 3),
        ("tool.responded", 3),
    ]
    assert all(e["payload"]["success"] is False and e["payload"]["error_hash"] for e in events[1::2])


def test_open_calls_closed_before_the_end(feed: Feed, dt: Dunetrace, ingest: IngestServer) -> None:
    crew = feed("crew_kickoff_started", inputs=None)
    agent = feed.agent(crew)
    feed("llm_call_started", agent, model="m", call_id="c1")
    feed("llm_call_started", agent, model="m", call_id="c2")
    feed("llm_call_failed", agent, None, call_id="c2", error="rate limited")
    feed("tool_usage_started", agent, tool_name="search", tool_args="x")
    feed("agent_execution_completed", None, agent)  # c1 and the tool never ended
    feed("crew_kickoff_completed", None, crew)
    events = _types(_events(dt, ingest), "fake.analyst")
    assert events[2:] == [
        ("llm.called", 1),
        ("llm.called", 2),
        ("llm.responded", 2),
        ("tool.called", 3),
        ("tool.responded", 3),
        ("llm.responded", 1),
        ("run.completed", 3),
    ]
    ends = [e["payload"] for e in ingest.events if e["event_type"] == "llm.responded"]
    assert [p["finish_reason"] for p in ends] == ["error", "error"]


def test_failures_name_their_error_type(feed: Feed, dt: Dunetrace, ingest: IngestServer) -> None:
    crew = feed("crew_kickoff_started", inputs=None)
    agent = feed.agent(crew)
    feed("agent_execution_error", None, agent, error="secret message")
    feed("task_failed", crew, error="secret message", error_type=KeyError)
    feed("crew_kickoff_failed", None, crew, error="secret message")
    events = _events(dt, ingest)
    errored = {e["agent_id"]: e["payload"] for e in events if e["event_type"] == "run.errored"}
    assert errored["fake"]["error_type"] == "KeyError"
    assert errored["fake.analyst"]["error_type"] == "CrewAIError"
    assert b"secret message" not in ingest.raw()


def test_late_unplaced_and_out_of_order_events(feed: Feed, dt: Dunetrace, ingest: IngestServer) -> None:
    assembler = feed.assembler
    feed("llm_call_started", "unknown-parent", model="m", call_id="x")  # no crew: ignored
    assert assembler.stats["unplaced"] == 1
    crew = feed("crew_kickoff_started", inputs=None)
    agent = feed.agent(crew)
    late_tool = SimpleNamespace(
        type="tool_usage_started",
        event_id="late",
        parent_event_id=agent.event_id,
        started_event_id=None,
        emission_sequence=1,
        tool_name="t",
        tool_args=None,
        timestamp=T0,
        agent_id=None,
        task_id=None,
    )
    assembler.handle(late_tool)
    assert assembler.stats["out_of_order"] == 1
    feed("agent_execution_completed", None, agent)
    feed("tool_usage_started", agent, tool_name="after-the-end", tool_args=None)
    assert assembler.stats["late"] == 1
    feed("crew_kickoff_completed", None, crew)
    assert assembler.open_runs() == 0 and not assembler._owner
    names = [e["payload"].get("tool_name") for e in _events(dt, ingest) if e["event_type"] == "tool.called"]
    assert names == ["t"]


def test_garbage_is_ignored(feed: Feed, dt: Dunetrace, ingest: IngestServer) -> None:
    for junk in (None, object(), SimpleNamespace(type="llm_call_completed"), SimpleNamespace(type=42)):
        feed.assembler.handle(junk)
    assert _events(dt, ingest) == []


def test_open_crews_are_bounded(dt: Dunetrace, ingest: IngestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_assembler, "MAX_CREWS", 2)
    feed = Feed(Translator(dt, "fake"))
    for _ in range(3):
        feed("crew_kickoff_started", inputs=None)
    assert feed.assembler.open_runs() == 2
    ends = [e["payload"] for e in _events(dt, ingest) if e["event_type"] == "run.completed"]
    assert ends == [{"exit_reason": "abandoned", "total_steps": 0}]
    feed.assembler.close()
    assert feed.assembler.open_runs() == 0


def test_assembler_needs_no_crewai() -> None:
    from dunetrace.integrations.crewai import errors, readers, tool_calls

    for module in (_assembler, readers, tool_calls, errors):
        source = Path(module.__file__).read_text()  # type: ignore[arg-type]
        assert "import crewai" not in source and "from crewai" not in source
