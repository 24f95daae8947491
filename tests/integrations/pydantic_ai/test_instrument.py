"""``dunetrace.integrations.pydantic_ai.instrument``: every agent run
reported through Pydantic AI's own spans, with no change to the agents."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic_ai import Agent

from dunetrace import Dunetrace
from dunetrace.examples import pydantic_ai_agent
from dunetrace.integrations.pydantic_ai import instrument, uninstrument
from tests.integrations.llamaindex.recorded import by_run, only, tool_loop, types, well_formed


def test_the_example_runs_offline_and_one_run_loops(
    dt: Dunetrace, received: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The suite sets OTEL_SDK_DISABLED; instrument()'s own provider works regardless.
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    answers = pydantic_ai_agent.main(dt)
    assert answers == [
        "Breakfast is from 7:00 to 10:30 in the garden room.",
        "Sorry, no sea-view room is free that night.",
    ]
    runs = list(by_run(received()).values())
    assert len(runs) == 2
    healthy, looping = sorted(runs, key=len)
    for events in runs:
        well_formed(events)
        assert events[0]["agent_id"] == pydantic_ai_agent.AGENT_ID
        assert events[0]["payload"]["tools"] == ["check_room", "breakfast_hours"]
        assert events[0]["payload"]["model"] == "offline-planner"
    assert not tool_loop(healthy) and tool_loop(looping)
    assert [e["payload"]["tool_name"] for e in only(looping, "tool.called")] == ["check_room"] * 5
    assert Agent._instrument_default is False  # main() put back what was there


def test_instrument_is_idempotent_and_uninstrument_restores(
    dt: Dunetrace, received: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    mine = TracerProvider()
    memory = InMemorySpanExporter()
    mine.add_span_processor(SimpleSpanProcessor(memory))
    first = instrument(dt, agent_id="a", tracer_provider=mine)
    assert instrument(dt, agent_id="a", tracer_provider=mine) is first
    try:
        assert pydantic_ai_agent.ask("When is breakfast?", loops=0).startswith("Breakfast")
    finally:
        uninstrument()
    assert Agent._instrument_default is False
    assert mine._active_span_processor._span_processors == (mine._active_span_processor._span_processors[0],)
    assert len(memory.get_finished_spans()) == 4  # the user's exporter got the spans too
    assert types(received()) == [
        "run.started",
        "llm.called",
        "llm.responded",
        "tool.called",
        "tool.responded",
        "llm.called",
        "llm.responded",
        "run.completed",
    ]
    pydantic_ai_agent.ask("When is breakfast?", loops=0)
    assert len(received()) == 8  # not reported any more


def test_an_agent_with_its_own_instrumentation_is_left_alone(dt: Dunetrace, received: Any) -> None:
    instrument(dt, agent_id="a")
    try:
        agent = Agent(pydantic_ai_agent.scripted_model(0), tools=[pydantic_ai_agent.breakfast_hours])
        agent.instrument = False
        agent.run_sync("When is breakfast?")
    finally:
        uninstrument()
    assert received() == []


def test_a_provider_that_is_not_the_sdks_is_refused(dt: Dunetrace) -> None:
    with pytest.raises(TypeError, match="SDK TracerProvider"):
        instrument(dt, tracer_provider=object())  # type: ignore[arg-type]


async def test_a_streamed_run_is_one_run(dt: Dunetrace, received: Any) -> None:
    from pydantic_ai.messages import ModelMessage
    from pydantic_ai.models.function import AgentInfo, DeltaToolCall, FunctionModel

    async def stream(messages: list[ModelMessage], info: AgentInfo) -> Any:
        if len(messages) == 1:
            yield {0: DeltaToolCall(name="breakfast_hours", json_args="{}")}
        else:
            for word in ("Breakfast ", "is ", "at ", "seven."):
                yield word

    instrument(dt, agent_id="streamer")
    try:
        agent = Agent(
            FunctionModel(stream_function=stream, model_name="streaming"), tools=[pydantic_ai_agent.breakfast_hours]
        )
        async with agent.run_stream("When is breakfast?") as result:
            text = await result.get_output()
    finally:
        uninstrument()
    assert text == "Breakfast is at seven."
    events = received()
    well_formed(events)
    assert len(by_run(events)) == 1
    assert [e["payload"]["tool_name"] for e in only(events, "tool.called")] == ["breakfast_hours"]
    assert len(only(events, "llm.called")) == 2
