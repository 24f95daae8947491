"""instrument / uninstrument / shutdown, installing late, the example, the
privacy promise, and imports."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from crewai.events import crewai_event_bus

from dunetrace import Dunetrace
from dunetrace.integrations.crewai import installed, instrument, uninstrument
from tests.ingest_server import IngestServer

from .crews import final, react, two_agent_crew
from .wire import by_run, delivered, shape


def _loop_crew():  # type: ignore[no-untyped-def]
    return two_agent_crew([react("search", {"query": q}) for q in "abc"] + [final("done")])


def _registered(handlers: list) -> list[bool]:
    # CrewAI's bus keeps sync handlers per event class (1.15: _sync_handlers).
    return [handler in crewai_event_bus._sync_handlers.get(event_type, ()) for event_type, handler in handlers]


def test_instrument_twice_counts_once(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    first = instrument(crew_dt, agent_id="crew")
    second = instrument(crew_dt, agent_id="crew")
    assert first is second
    _loop_crew().kickoff(inputs={"topic": "t"})
    events = delivered(ingest, crew_dt, runs=3)
    assert sum(e["event_type"] == "run.started" for e in events) == 3
    assert sum(e["event_type"] == "tool.called" for e in events) == 3
    assert sum(e["event_type"] == "llm.called" for e in events) == 5


def test_uninstrument_unregisters_every_handler(dt: Dunetrace, ingest: IngestServer) -> None:
    listener = instrument(dt, agent_id="crew")
    handlers = list(listener.handlers)
    assert len(handlers) >= 100 and all(_registered(handlers))
    uninstrument(dt)
    assert not installed(dt)
    assert not any(_registered(handlers))
    assert not [p for p in dt.plugins.get_plugins() if "crewai" in type(p).__module__]
    _loop_crew().kickoff(inputs={"topic": "t"})
    assert delivered(ingest, dt) == []
    uninstrument(dt)  # a second call is harmless


def test_shutdown_detaches(ingest: IngestServer) -> None:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    listener = instrument(client, agent_id="crew")
    handlers = list(listener.handlers)
    client.shutdown()
    assert not installed(client)
    assert not any(_registered(handlers))


def test_installed_after_a_crew_already_ran(dt: Dunetrace, ingest: IngestServer) -> None:
    crew = _loop_crew()
    crew.kickoff(inputs={"topic": "t"})
    crewai_event_bus.flush()
    assert delivered(ingest, dt) == []
    instrument(dt, agent_id="late")
    try:
        for agent in crew.agents:
            agent.llm.calls = 0
        crew.kickoff(inputs={"topic": "t"})
        events = delivered(ingest, dt, runs=3)
    finally:
        uninstrument(dt)
    runs = by_run(events)
    assert sorted(k.split("#")[0] for k in runs) == ["late", "late.researcher", "late.senior-writer"]
    researcher = next(v for k, v in runs.items() if k.startswith("late.researcher#"))
    assert [s for s in shape(researcher) if s[0] == "tool.called"] == [
        ("tool.called", 2, "search"),
        ("tool.called", 4, "search"),
        ("tool.called", 6, "search"),
    ]
    assert researcher[-1]["event_type"] == "run.completed"


def test_example_is_a_tool_loop(dt: Dunetrace, ingest: IngestServer) -> None:
    from dunetrace.examples import crewai_agent

    try:
        result = crewai_agent.main(dt)
    finally:
        uninstrument(dt)
    assert "Everest" in str(result)
    assert crewai_agent.EXTRA == "crewai"
    events = delivered(ingest, dt, runs=3)
    runs = by_run(events)
    assert sorted(k.split("#")[0] for k in runs) == [
        "research-crew",
        "research-crew.researcher",
        "research-crew.writer",
    ]
    researcher = next(v for k, v in runs.items() if k.startswith("research-crew.researcher#"))
    tools = [e["payload"]["tool_name"] for e in researcher if e["event_type"] == "tool.called"]
    assert tools == ["search", "search", "search"]  # TOOL_LOOP: same tool 3 times in 5 calls
    assert all(e["payload"]["success"] for e in researcher if e["event_type"] == "tool.responded")


SENTINEL = "SENTINEL-c9f1e2"


def test_privacy_sentinel_never_leaves(dt: Dunetrace, ingest: IngestServer) -> None:
    from .crews import broken, search

    instrument(dt, agent_id="private")
    try:
        crew = two_agent_crew(
            [
                react("search", {"query": SENTINEL}),
                react("broken", {"query": SENTINEL}),
                f"Thought: {SENTINEL}\nFinal Answer: {SENTINEL}",
            ],
            [final(SENTINEL)],
            tools=[search, broken],
            topic_task=f"Research {{topic}} {SENTINEL}",
            goal=f"goal {SENTINEL}",
            backstory=f"backstory {SENTINEL}",
        )
        crew.kickoff(inputs={"topic": SENTINEL, "secret": SENTINEL})
        failing = two_agent_crew([RuntimeError(f"provider said {SENTINEL}")], goal=SENTINEL)
        with pytest.raises(Exception, match=SENTINEL):
            failing.kickoff(inputs={"topic": SENTINEL})
        events = delivered(ingest, dt, runs=3 + 4)
    finally:
        uninstrument(dt)
    types = {e["event_type"] for e in events}
    assert {"tool.called", "tool.responded", "llm.responded", "run.errored", "run.completed"} <= types
    assert any(e["payload"].get("success") is False for e in events)
    raw = ingest.raw()
    assert raw and SENTINEL.encode() not in raw


def test_importing_does_not_import_crewai_and_missing_crewai_is_clear() -> None:
    code = textwrap.dedent(
        """
        import sys
        import dunetrace
        import dunetrace.integrations.crewai as integration
        assert "crewai" not in sys.modules, "crewai imported at import time"
        for name in [m for m in sys.modules if m == "crewai" or m.startswith("crewai.")]:
            del sys.modules[name]
        sys.modules["crewai"] = None
        client = dunetrace.Dunetrace(export="none")
        try:
            integration.instrument(client, agent_id="x")
        except ImportError as exc:
            print("IMPORT-ERROR:", exc)
        else:
            print("no error")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "IMPORT-ERROR:" in out.stdout and "pip install 'dunetrace[crewai]'" in out.stdout


def test_shutdown_right_after_kickoff_keeps_the_crews_end(ingest: IngestServer) -> None:
    """crewai 1.15 returns from kickoff() before its handler pool has run the
    last events. Ten slow handlers on the last task's completion fill the
    pool, so ours for the kickoff's completion is still waiting when the
    user shuts down: the flush hook must wait for it."""
    import time

    from crewai.events import TaskCompletedEvent

    def make_slow():  # type: ignore[no-untyped-def]
        def slow(source: object, event: object) -> None:
            time.sleep(0.5)

        return slow

    slow_handlers = [make_slow() for _ in range(10)]
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    instrument(client, agent_id="crew")
    for handler in slow_handlers:
        crewai_event_bus.on(TaskCompletedEvent)(handler)
    try:
        _loop_crew().kickoff(inputs={"topic": "t"})
        assert client.shutdown(timeout=20)
    finally:
        for handler in slow_handlers:
            crewai_event_bus.off(TaskCompletedEvent, handler)
    runs = by_run(ingest.events)
    crew_run = next(v for k, v in runs.items() if k.startswith("crew#"))
    assert crew_run[-1]["event_type"] == "run.completed"
    assert sum(e["event_type"] == "run.completed" for e in ingest.events) == 3
    assert client.stats()["dropped_total"] == 0
