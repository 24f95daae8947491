"""The OpenAI Agents SDK, offline, reported by DunetraceTracingProcessor."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dunetrace import Dunetrace
from dunetrace.integrations.openai_agents import DunetraceTracingProcessor, instrument, uninstrument
from tests.ingest_server import IngestServer
from tests.integrations.llamaindex.recorded import by_run, only, tool_loop, types, well_formed

from .agents_offline import ScriptedResponses, StreamingResponses, responses_model, rooms_agent

SENTINEL = "OAAG-agents-sentinel-4471"


@pytest.fixture
def reporting(dt: Dunetrace) -> Iterator[DunetraceTracingProcessor]:
    processor = instrument(dt, agent_id="rooms-bot", replace=True)
    yield processor
    uninstrument()


def test_a_run_with_model_and_tool_calls(reporting: Any, received: Any) -> None:
    from agents import Runner

    result = Runner.run_sync(rooms_agent(loops=2), "a room for friday")
    assert result.final_output == "none free "
    events = received()
    well_formed(events)
    assert types(events) == [
        "run.started",
        "llm.called",
        "llm.responded",
        "tool.called",
        "tool.responded",
        "llm.called",
        "llm.responded",
        "tool.called",
        "tool.responded",
        "llm.called",
        "llm.responded",
        "run.completed",
    ]
    assert events[0]["agent_id"] == "rooms-bot" and events[0]["payload"]["tools"] == ["search"]
    calls = only(events, "llm.called")
    assert [e["payload"]["prompt_tokens"] for e in calls] == [150, 300, 450]
    assert all(e["payload"]["model"] == "gpt-scripted" for e in calls)
    assert [e["payload"]["finish_reason"] for e in only(events, "llm.responded")] == [
        "tool_calls",
        "tool_calls",
        "stop",
    ]
    assert all(e["payload"]["success"] for e in only(events, "tool.responded"))
    assert len({e["payload"]["args_hash"] for e in only(events, "tool.called")}) == 1
    assert events[-1]["payload"]["exit_reason"] == "final_answer"


def test_a_handoff_is_a_child_run(reporting: Any, received: Any) -> None:
    from agents import Agent, Runner

    class Handoff(ScriptedResponses):
        def __call__(self, request: Any) -> Any:
            self.calls += 1
            import httpx

            return httpx.Response(
                200,
                json={
                    "id": "r",
                    "object": "response",
                    "created_at": 0,
                    "model": "gpt-scripted",
                    "status": "completed",
                    "output": [
                        {
                            "type": "function_call",
                            "id": "h",
                            "call_id": "h1",
                            "name": "transfer_to_rooms",
                            "arguments": "{}",
                            "status": "completed",
                        }
                    ],
                    "parallel_tool_calls": True,
                    "tool_choice": "auto",
                    "tools": [],
                    "usage": {
                        "input_tokens": 20,
                        "output_tokens": 3,
                        "total_tokens": 23,
                        "input_tokens_details": {"cached_tokens": 0},
                        "output_tokens_details": {"reasoning_tokens": 0},
                    },
                },
            )

    rooms = rooms_agent(loops=1)
    triage = Agent(name="triage", instructions="Route.", handoffs=[rooms], model=responses_model(Handoff(0)))
    assert Runner.run_sync(triage, "a room please").final_output == "none free "
    runs = by_run(received())
    assert len(runs) == 2
    (top,) = [r for r in runs.values() if r[0]["parent_run_id"] is None]
    (child,) = [r for r in runs.values() if r[0]["parent_run_id"] is not None]
    well_formed(top)
    well_formed(child)
    assert child[0]["parent_run_id"] == top[0]["run_id"] and child[0]["agent_id"] == "rooms-bot.rooms"
    assert child[0]["payload"]["tools"] == ["search"]
    assert [e["payload"]["tool_name"] for e in only(child, "tool.called")] == ["search"]
    assert len(only(top, "llm.called")) == 1


def test_a_tripped_guardrail_has_its_own_exit_reason(reporting: Any, received: Any) -> None:
    from agents import GuardrailFunctionOutput, InputGuardrailTripwireTriggered, Runner, input_guardrail

    @input_guardrail
    def no_refunds(ctx: Any, agent: Any, text: Any) -> GuardrailFunctionOutput:
        return GuardrailFunctionOutput(output_info=None, tripwire_triggered="refund" in str(text))

    agent = rooms_agent(loops=0)
    agent.input_guardrails = [no_refunds]
    with pytest.raises(InputGuardrailTripwireTriggered):
        Runner.run_sync(agent, "I want a refund")
    events = received()
    well_formed(events)
    assert events[-1]["event_type"] == "run.completed"
    assert events[-1]["payload"]["exit_reason"] == "guardrail_tripped"


def test_a_looping_agent_is_a_tool_loop_and_no_content_reaches_the_wire(
    reporting: Any, received: Any, ingest: IngestServer
) -> None:
    from agents import Runner

    Runner.run_sync(rooms_agent(loops=5, secret=SENTINEL), f"a room for friday {SENTINEL}")
    events = received()
    well_formed(events)
    assert tool_loop(events)
    assert SENTINEL.encode() not in ingest.raw()


def test_instrument_adds_beside_the_sdks_processors_and_uninstrument_restores(dt: Dunetrace) -> None:
    from agents.tracing import get_trace_provider

    provider = get_trace_provider()
    before = provider._multi_processor._processors
    processor = instrument(dt, agent_id="a")
    assert instrument(dt, agent_id="a") is processor
    assert provider._multi_processor._processors == (*before, processor)
    uninstrument()
    assert provider._multi_processor._processors == before
    replacing = instrument(dt, agent_id="a", replace=True)
    assert provider._multi_processor._processors == (replacing,)
    uninstrument()
    assert provider._multi_processor._processors == before


def test_a_failing_tool_is_a_failed_call(reporting: Any, received: Any) -> None:
    from agents import Agent, Runner, function_tool

    @function_tool
    def book(room: str) -> str:
        """Book a room."""
        raise ConnectionError(f"booking service down {SENTINEL}")

    class Book(ScriptedResponses):
        def __call__(self, request: Any) -> Any:
            response = super().__call__(request)
            if self.calls == 1:
                body = response.json()
                body["output"][0]["name"] = "book"
                body["output"][0]["arguments"] = '{"room": "12"}'
                import httpx

                return httpx.Response(200, json=body)
            return response

    agent = Agent(name="booker", tools=[book], model=responses_model(Book(loops=1)))
    assert Runner.run_sync(agent, "book room 12").final_output == "none free "
    events = received()
    well_formed(events)
    (failed,) = only(events, "tool.responded")
    assert failed["payload"]["tool_name"] == "book" and failed["payload"]["success"] is False
    assert len(failed["payload"]["error_hash"]) == 64


def test_the_example_runs_offline_and_one_run_loops(dt: Dunetrace, received: Any) -> None:
    from dunetrace.examples import openai_agents_agent

    answers = openai_agents_agent.main(dt)
    assert answers == ["Breakfast is from 7:00 to 10:30.", "Sorry, no sea-view room is free that night."]
    runs = list(by_run(received()).values())
    assert len(runs) == 2
    healthy, looping = sorted(runs, key=len)
    for events in runs:
        well_formed(events)
        assert events[0]["agent_id"] == openai_agents_agent.AGENT_ID
        assert events[0]["payload"]["tools"] == ["check_room", "breakfast_hours"]
    assert not tool_loop(healthy) and tool_loop(looping)


async def test_concurrent_runs_in_one_loop_stay_apart(reporting: Any, received: Any) -> None:
    import asyncio

    from agents import Runner

    results = await asyncio.gather(*(Runner.run(rooms_agent(loops=k), f"question {k}") for k in range(5)))
    assert [r.final_output for r in results] == ["none free "] * 5
    runs = by_run(received())
    assert len(runs) == 5
    for events in runs.values():
        well_formed(events)
    assert sorted(len(only(events, "tool.called")) for events in runs.values()) == [0, 1, 2, 3, 4]
    assert reporting.stats()["open_runs"] == 0


def test_an_unreadable_span_is_skipped_never_raised(dt: Dunetrace, monkeypatch: pytest.MonkeyPatch) -> None:
    from dunetrace import log as dunetrace_log

    monkeypatch.setattr(dunetrace_log, "strict", False)
    processor = DunetraceTracingProcessor(dt, agent_id="a")
    for call in (processor.on_trace_start, processor.on_trace_end, processor.on_span_start, processor.on_span_end):
        call(object())
    assert processor.stats()["unreadable"] == 4


async def test_a_streamed_run_is_one_run(reporting: Any, received: Any) -> None:
    from agents import Runner

    agent = rooms_agent(loops=2)
    agent.model = responses_model(StreamingResponses(loops=2))
    result = Runner.run_streamed(agent, "a room for friday")
    async for _ in result.stream_events():
        pass
    assert result.final_output == "none free "
    events = received()
    well_formed(events)
    assert len(by_run(events)) == 1
    assert [e["payload"]["tool_name"] for e in only(events, "tool.called")] == ["search", "search"]
    assert [e["payload"]["prompt_tokens"] for e in only(events, "llm.called")] == [150, 300, 450]


def test_each_runner_run_in_one_trace_is_a_run_of_its_own(reporting: Any, received: Any) -> None:
    from agents import Runner, trace

    with trace("booking desk"):
        Runner.run_sync(rooms_agent(loops=1), "a room for friday")
        Runner.run_sync(rooms_agent(loops=2), "and one for saturday")
    runs = list(by_run(received()).values())
    assert len(runs) == 2
    for events in runs:
        well_formed(events)
        assert events[0]["parent_run_id"] is None and events[0]["payload"]["tools"] == ["search"]
    assert sorted(len(only(events, "tool.called")) for events in runs) == [1, 2]


def test_without_task_spans_the_trace_is_the_run(reporting: Any, received: Any) -> None:
    from agents import RunConfig, Runner

    config = RunConfig(tracing={"include_task_and_turn_spans": False})
    assert Runner.run_sync(rooms_agent(loops=2), "a room", run_config=config).final_output == "none free "
    events = received()
    well_formed(events)
    assert len(by_run(events)) == 1
    assert events[0]["payload"]["tools"] == ["search"]
    assert [e["payload"]["tool_name"] for e in only(events, "tool.called")] == ["search", "search"]
    assert events[-1]["payload"]["exit_reason"] == "final_answer"


def test_a_looping_agent_yields_tool_loop_at_the_collector(tmp_path: Any) -> None:
    import httpx
    from agents import Runner

    from dunetrace.collector.server import BackgroundServer
    from dunetrace.collector.settings import Settings
    from tests.integrations.otel.conftest import collector_signals

    server = BackgroundServer(Settings(db_path=str(tmp_path / "collector.db"))).start()
    client = Dunetrace(endpoint=server.url, flush_interval=0.05)
    try:
        instrument(client, agent_id="looping-rooms", replace=True)
        try:
            Runner.run_sync(rooms_agent(loops=5), "a room for friday")
        finally:
            uninstrument()
        assert client.flush(5)
        (run,) = httpx.get(f"{server.url}/api/agents/looping-rooms/runs", timeout=10).json()["items"]
        assert "TOOL_LOOP" in collector_signals(server, run["run_id"])
    finally:
        client.shutdown(timeout=5)
        server.stop()
