"""A real CrewAI crew (offline, scripted LLMs) reported to a real ingest
server on 127.0.0.1."""

from __future__ import annotations

import time
from collections import Counter

from crewai.events import crewai_event_bus

from dunetrace import Dunetrace
from dunetrace.integrations.crewai import instrument
from tests.ingest_server import IngestServer

from .crews import broken, final, react, search, two_agent_crew
from .wire import by_run, delivered, shape


def test_two_agent_crew_custom_llm(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    crew = two_agent_crew(
        [
            react("search", {"query": "a"}),
            react("search", {"query": "b"}),
            react("search", {"query": "c"}),
            final("42"),
        ],
    )
    result = crew.kickoff(inputs={"topic": "mountains"})
    assert result.raw == "written"
    events = delivered(ingest, crew_dt, runs=3)
    runs = by_run(events)
    assert sorted(k.split("#")[0] for k in runs) == ["crew", "crew.researcher", "crew.senior-writer"]
    crew_run = next(v for k, v in runs.items() if k.startswith("crew#"))
    researcher = next(v for k, v in runs.items() if k.startswith("crew.researcher#"))
    writer = next(v for k, v in runs.items() if k.startswith("crew.senior-writer#"))

    assert shape(researcher) == [
        ("run.started", 0, None),
        ("external.signal", 0, "crewai.task"),
        ("llm.called", 1, None),
        ("llm.responded", 1, "stop"),
        ("tool.called", 2, "search"),
        ("tool.responded", 2, "search"),
        ("llm.called", 3, None),
        ("llm.responded", 3, "stop"),
        ("tool.called", 4, "search"),
        ("tool.responded", 4, "search"),
        ("llm.called", 5, None),
        ("llm.responded", 5, "stop"),
        ("tool.called", 6, "search"),
        ("tool.responded", 6, "search"),
        ("llm.called", 7, None),
        ("llm.responded", 7, "stop"),
        ("run.completed", 7, "final_answer"),
    ]
    assert shape(writer) == [
        ("run.started", 0, None),
        ("external.signal", 0, "crewai.task"),
        ("llm.called", 1, None),
        ("llm.responded", 1, "stop"),
        ("run.completed", 1, "final_answer"),
    ]
    assert shape(crew_run) == [("run.started", 0, None), ("run.completed", 0, "final_answer")]

    # The tree: both agents are children of the crew run, which ends last.
    crew_id = crew_run[0]["run_id"]
    assert {e["parent_run_id"] for e in researcher + writer} == {crew_id}
    assert crew_run[0]["parent_run_id"] is None
    assert all(e["timestamp"] <= crew_run[-1]["timestamp"] for e in events)  # the crew ends last
    assert crew_run[0]["payload"]["tools"] == ["search"]

    started = researcher[0]["payload"]
    assert started["model"] == "scripted-1" and started["tools"] == ["search"] and "input_hash" in started
    assert researcher[1]["payload"]["task_name"] == "research"

    # TOOL_LOOP-shaped: the same tool 3 times within 5 tool calls, distinct args.
    tool_calls = [e for e in researcher if e["event_type"] == "tool.called"]
    assert Counter(e["payload"]["tool_name"] for e in tool_calls) == {"search": 3}
    assert len({e["payload"]["args_hash"] for e in tool_calls}) == 3
    assert all(e["payload"]["success"] is True for e in researcher if e["event_type"] == "tool.responded")
    assert all(e["payload"]["latency_ms"] >= 0 for e in researcher if e["event_type"] == "tool.responded")

    # Tokens come from CrewAI's usage dict.
    responded = [e["payload"] for e in researcher if e["event_type"] == "llm.responded"]
    assert [p["prompt_tokens"] for p in responded] == [100, 200, 300, 400]
    assert [p["completion_tokens"] for p in responded] == [11, 12, 13, 14]
    assert all(p["output_length"] > 0 and len(p["output_hash"]) == 64 for p in responded)
    assert [e["payload"]["model"] for e in researcher if e["event_type"] == "llm.called"] == ["scripted-1"] * 4


def test_events_arrive_with_no_flush_stamped_with_crewais_times(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    """CrewAI's pool threads only queue; the drain thread translates at its
    next wake. Nobody flushes here, and each event still carries the time
    CrewAI gave it, not the later time it was translated at."""
    crew = two_agent_crew([react("search", {"query": "a"}), final("42")])
    started_at = time.time()
    crew.kickoff(inputs={"topic": "mountains"})
    returned_at = time.time()
    assert ingest.wait_for(lambda events: sum(e["event_type"] == "run.completed" for e in events) == 3, timeout=10)
    events = ingest.events
    assert len(events) == 16
    assert all(started_at <= e["timestamp"] <= returned_at for e in events)
    tool = [e for e in events if e["event_type"].startswith("tool.")]
    assert [e["event_type"] for e in tool] == ["tool.called", "tool.responded"]
    assert tool[0]["timestamp"] <= tool[1]["timestamp"]


def test_tool_that_raises_is_a_failed_call(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    crew = two_agent_crew([react("broken", {"query": "x"}), final("gave up")], tools=[broken, search])
    crew.kickoff(inputs={"topic": "t"})
    events = delivered(ingest, crew_dt, runs=3)
    researcher = next(v for k, v in by_run(events).items() if k.startswith("crew.researcher#"))
    failed = [e["payload"] for e in researcher if e["event_type"] == "tool.responded"]
    # CrewAI 1.15 tries a raising tool 3 times: three failed calls in a row
    # (the RETRY_STORM shape), each its own step.
    assert len(failed) == 3 and all(p["tool_name"] == "broken" and p["success"] is False for p in failed)
    assert all(len(p["error_hash"]) == 64 for p in failed)
    calls = [e for e in researcher if e["event_type"] == "tool.called"]
    assert len(calls) == len(failed)
    assert researcher[-1]["event_type"] == "run.completed"


def test_order_holds_when_crewais_thread_pool_is_busy(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    """Slow handlers of another listener keep CrewAI's 10-thread pool busy,
    so our handlers see events out of order; the sequencer restores CrewAI's
    emission order, without waiting out a gap (nothing was missing)."""
    import random
    import time

    from crewai.events import LLMCallCompletedEvent, LLMCallStartedEvent, ToolUsageStartedEvent

    def slow(source: object, event: object) -> None:
        time.sleep(random.random() / 50)

    kinds = (LLMCallStartedEvent, LLMCallCompletedEvent, ToolUsageStartedEvent)
    for kind in kinds:
        crewai_event_bus.on(kind)(slow)
    try:
        crew = two_agent_crew([react("search", {"query": str(i)}) for i in range(6)] + [final("done")])
        crew.kickoff(inputs={"topic": "t"})
        events = delivered(ingest, crew_dt, runs=3)
    finally:
        for kind in kinds:
            crewai_event_bus.off(kind, slow)
    researcher = next(v for k, v in by_run(events).items() if k.startswith("crew.researcher#"))
    expected = [("run.started", 0, None), ("external.signal", 0, "crewai.task")]
    for i in range(6):
        expected += [
            ("llm.called", 2 * i + 1, None),
            ("llm.responded", 2 * i + 1, "stop"),
            ("tool.called", 2 * i + 2, "search"),
            ("tool.responded", 2 * i + 2, "search"),
        ]
    expected += [("llm.called", 13, None), ("llm.responded", 13, "stop"), ("run.completed", 13, "final_answer")]
    assert shape(researcher) == expected
    assert instrument(crew_dt, agent_id="crew").sequencer.forced == 0


def test_cached_tool_result_is_flagged(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    """CrewAI's tool cache answers a repeated call (same tool, same args)
    without running the tool: still a call, with from_cache=True and the
    same args hash."""
    crew = two_agent_crew(
        [
            react("search", {"query": "same"}),
            react("search", {"query": "other"}),
            react("search", {"query": "same"}),
            final("done"),
        ],
    )
    for agent in crew.agents:
        agent.cache = True
    crew.cache = True
    crew.kickoff(inputs={"topic": "t"})
    events = delivered(ingest, crew_dt, runs=3)
    researcher = next(v for k, v in by_run(events).items() if k.startswith("crew.researcher#"))
    calls = [e["payload"] for e in researcher if e["event_type"] == "tool.called"]
    ends = [e["payload"] for e in researcher if e["event_type"] == "tool.responded"]
    assert [p.get("from_cache") for p in ends] == [False, False, True]
    assert calls[0]["args_hash"] == calls[2]["args_hash"] != calls[1]["args_hash"]


def test_inputs_interpolated_into_a_role_stay_out_of_agent_id_and_version(
    crew_dt: Dunetrace, ingest: IngestServer
) -> None:
    """CrewAI writes the kickoff inputs into an agent's role and goal; the
    agent_id suffix and the version use the template as written."""
    for topic in ("volcanoes-7a1b", "glaciers-7a1b"):
        crew = two_agent_crew([final("ok")], role="{topic} Analyst", goal="Study {topic}")
        crew.kickoff(inputs={"topic": topic})
    events = delivered(ingest, crew_dt, runs=6)
    analysts = [e for e in events if e["event_type"] == "run.started" and e["agent_id"].endswith("analyst")]
    assert {e["agent_id"] for e in analysts} == {"crew.topic-analyst"}
    assert len(analysts) == 2 and len({e["agent_version"] for e in analysts}) == 1
    crews = [e for e in events if e["event_type"] == "run.started" and e["agent_id"] == "crew"]
    assert len({e["agent_version"] for e in crews}) == 1
    assert b"7a1b" not in ingest.raw()
