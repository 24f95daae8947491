"""Real frameworks that emit GenAI spans on their own, offline, reported
through a DunetraceSpanProcessor: their runs reach a real collector, which
finds the tool loop; nothing they were told reaches the wire."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dunetrace import Dunetrace
from tests.integrations.llamaindex.recorded import by_run, only, types, well_formed

from .agents import pydantic_ai_agent, smolagents_agent
from .conftest import Traced, collector_signals

SENTINEL = "QWXV-otel-sentinel-5521"


def test_pydantic_ai_run_with_tokens_finish_reasons_and_tools(traced: Traced, received: Any) -> None:
    agent = pydantic_ai_agent(traced.provider, loops=1)
    assert agent.run_sync("a room for friday").output == "no room is free "
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
        "run.completed",
    ]
    assert events[0]["payload"]["tools"] == ["search"] and events[0]["payload"]["model"] == "scripted"
    first, last = only(events, "llm.responded")
    assert first["payload"]["finish_reason"] == "tool_calls" and last["payload"]["finish_reason"] == "stop"
    assert all(e["payload"]["prompt_tokens"] > 0 and e["payload"]["completion_tokens"] > 0 for e in (first, last))
    assert only(events, "tool.responded")[0]["payload"]["success"] is True
    assert events[-1]["payload"]["exit_reason"] == "final_answer"


def test_pydantic_ai_failing_tool_is_a_failed_call_and_an_errored_run(
    dt: Dunetrace, traced: Traced, received: Any
) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelResponse, ToolCallPart
    from pydantic_ai.models.function import FunctionModel
    from pydantic_ai.models.instrumented import InstrumentationSettings

    agent = Agent(FunctionModel(lambda m, i: ModelResponse(parts=[ToolCallPart("book", {})]), model_name="s"))
    agent.instrument = InstrumentationSettings(tracer_provider=traced.provider)

    @agent.tool_plain
    def book() -> str:
        raise ConnectionError("booking service down")

    with pytest.raises(ConnectionError):
        agent.run_sync("book it")
    events = received()
    well_formed(events)
    assert only(events, "tool.responded")[0]["payload"]["success"] is False
    assert events[-1]["event_type"] == "run.errored" and events[-1]["payload"]["error_type"] == "ConnectionError"


def test_pydantic_ai_agent_delegating_to_another_is_a_child_run(traced: Traced, received: Any) -> None:
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.models.instrumented import InstrumentationSettings

    worker = pydantic_ai_agent(traced.provider, loops=1, name="worker")

    def boss_model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        if len(messages) == 1:
            return ModelResponse(parts=[ToolCallPart("ask_worker", {"q": "rooms"})], finish_reason="tool_call")
        return ModelResponse(parts=[TextPart("done")], finish_reason="stop")

    boss = Agent(FunctionModel(boss_model, model_name="boss-model"), name="boss")
    boss.instrument = InstrumentationSettings(tracer_provider=traced.provider)

    @boss.tool_plain
    async def ask_worker(q: str) -> str:
        return (await worker.run(q)).output

    boss.run_sync("find me a room")
    runs = by_run(received())
    assert len(runs) == 2
    (top,) = [r for r in runs.values() if r[0]["parent_run_id"] is None]
    (child,) = [r for r in runs.values() if r[0]["parent_run_id"] is not None]
    well_formed(top)
    well_formed(child)
    assert child[0]["parent_run_id"] == top[0]["run_id"]
    assert child[0]["agent_id"] == "otel-agent.worker"
    assert [e["payload"]["tool_name"] for e in only(top, "tool.called")] == ["ask_worker"]
    assert [e["payload"]["tool_name"] for e in only(child, "tool.called")] == ["search"]


def test_smolagents_through_openinference(traced: Traced, received: Any) -> None:
    agent, instrumentor = smolagents_agent(traced.provider, loops=1)
    try:
        assert agent.run("a room for friday") == "none free "
    finally:
        instrumentor.uninstrument()
    events = received()
    well_formed(events)
    assert events[0]["payload"]["tools"] == ["search", "final_answer"]
    assert [e["payload"]["tool_name"] for e in only(events, "tool.called")] == ["search", "final_answer"]
    calls = only(events, "llm.called")
    assert [e["payload"]["prompt_tokens"] for e in calls] == [200, 400]
    assert all(e["payload"]["model"] == "gpt-scripted" for e in calls)
    assert events[-1]["payload"]["exit_reason"] == "final_answer"


@pytest.mark.parametrize("framework", ["pydantic_ai", "smolagents"])
def test_a_looping_agent_yields_tool_loop_at_the_collector(
    framework: str, to_collector: Dunetrace, collector: Any
) -> None:
    traced = Traced(to_collector, f"{framework}-rooms")
    try:
        if framework == "pydantic_ai":
            pydantic_ai_agent(traced.provider, loops=5).run_sync("a room for friday")
        else:
            agent, instrumentor = smolagents_agent(traced.provider, loops=5)
            try:
                agent.run("a room for friday")
            finally:
                instrumentor.uninstrument()
    finally:
        traced.provider.shutdown()
    assert to_collector.flush(5)
    (run,) = httpx.get(f"{collector.url}/api/agents/{framework}-rooms/runs", timeout=10).json()["items"]
    assert "TOOL_LOOP" in collector_signals(collector, run["run_id"])


def test_no_content_from_either_framework_reaches_the_wire(
    dt: Dunetrace, traced: Traced, received: Any, ingest: Any
) -> None:
    agent = pydantic_ai_agent(traced.provider, loops=3, secret=SENTINEL)
    assert SENTINEL in agent.run_sync(f"a room for friday {SENTINEL}").output
    smol, instrumentor = smolagents_agent(traced.provider, loops=3, secret=SENTINEL)
    try:
        assert SENTINEL in smol.run(f"a room for friday {SENTINEL}")
    finally:
        instrumentor.uninstrument()
    # The spans held the sentinel everywhere: prompts, arguments, results, answers.
    exported = [str(dict(s.attributes)) for s in traced.exporter.get_finished_spans()]
    assert sum(SENTINEL in text for text in exported) >= 10
    events = received()
    assert len(by_run(events)) == 2 and len(events) > 20
    raw = ingest.raw()
    assert raw and SENTINEL.encode() not in raw
