"""A real Pydantic AI agent looping on a tool, with the live detectors on:
TOOL_LOOP fires during the run, and a ``stop`` policy on it makes the
agent's next model call raise PolicyViolation out of ``run_sync`` (with no
line but ``instrument()``); a ``switch_model`` on an agent without
``DunetraceCapability`` warns once when it triggers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dunetrace import Dunetrace, PolicyViolation
from dunetrace.examples import pydantic_ai_agent
from dunetrace.integrations.pydantic_ai import instrument, uninstrument
from tests.ingest_server import IngestServer


@pytest.fixture
def dt(ingest: IngestServer) -> Iterator[Dunetrace]:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05, detectors=True)  # the suite turns them off
    instrument(client, agent_id="hotel")
    yield client
    uninstrument()
    client.shutdown(timeout=5)


def _calls(model: Any) -> list[int]:
    """Wraps the scripted model's function to count the model calls made."""
    made: list[int] = []
    reply = model.function

    def counted(messages: Any, info: Any) -> Any:
        made.append(len(messages))
        return reply(messages, info)

    model.function = counted
    return made


def _agent(loops: int, *capabilities: Any) -> tuple[Any, list[int]]:
    from pydantic_ai import Agent

    model = pydantic_ai_agent.scripted_model(loops)
    made = _calls(model)
    tools = [pydantic_ai_agent.check_room, pydantic_ai_agent.breakfast_hours]
    agent = Agent(
        model, system_prompt=pydantic_ai_agent.SYSTEM_PROMPT, tools=tools, name="hotel", capabilities=list(capabilities)
    )
    return agent, made


def test_a_tool_loop_policy_stops_the_agent_at_its_next_model_call(dt: Dunetrace, received: Any) -> None:
    dt.add_policy("no-loops", when={"signal": "TOOL_LOOP"}, then="stop")
    seen: list[tuple[str, bool]] = []
    dt.on_signal(lambda signal: seen.append((signal.type, signal.run.finished)))
    agent, made = _agent(loops=8)
    with pytest.raises(PolicyViolation, match="no-loops"):
        agent.run_sync("Is a sea-view room free on 2026-12-24?")
    assert len(made) == 3  # the fourth model call was refused before the model saw it
    assert seen == [("TOOL_LOOP", False), ("POLICY_TRIGGERED", False)]
    events = received()
    assert sum(e["event_type"] == "tool.called" for e in events) == 3
    assert sum(e["event_type"] == "tool.responded" for e in events) == 3
    signals = [e["payload"]["signal_name"] for e in events if e["event_type"] == "external.signal"]
    assert signals == ["TOOL_LOOP", "POLICY_TRIGGERED"]
    assert events[-1]["event_type"] == "run.errored"
    assert events[-1]["payload"]["error_type"] == "PolicyViolation"


async def test_an_async_run_is_stopped_the_same_way(dt: Dunetrace, received: Any) -> None:
    dt.add_policy("no-loops", when={"signal": "TOOL_LOOP"}, then="stop")
    agent, made = _agent(loops=8)
    with pytest.raises(PolicyViolation):
        await agent.run("Is a sea-view room free on 2026-12-24?")
    assert len(made) == 3
    assert received()[-1]["payload"]["error_type"] == "PolicyViolation"


def test_without_a_policy_the_looping_agent_runs_to_its_answer(dt: Dunetrace, received: Any) -> None:
    seen: list[str] = []
    dt.on_signal(lambda signal: seen.append(signal.type))
    agent, made = _agent(loops=8)
    assert agent.run_sync("Is a sea-view room free on 2026-12-24?").output.startswith("Sorry")
    assert len(made) == 9
    assert "TOOL_LOOP" in seen
    events = received()
    assert sum(e["event_type"] == "tool.called" for e in events) == 8
    assert events[-1]["event_type"] == "run.completed"


def test_a_stop_in_one_run_leaves_the_next_run_alone(dt: Dunetrace, received: Any) -> None:
    dt.add_policy("no-loops", when={"signal": "TOOL_LOOP"}, then="stop")
    looping, _ = _agent(loops=8)
    with pytest.raises(PolicyViolation):
        looping.run_sync("Is a sea-view room free on 2026-12-24?")
    healthy, _ = _agent(loops=0)
    assert healthy.run_sync("When is breakfast?").output.startswith("Breakfast")
    assert received()[-1]["event_type"] == "run.completed"


def test_a_rewrite_on_an_agent_without_the_capability_warns_once_when_it_triggers(
    dt: Dunetrace, caplog: pytest.LogCaptureFixture
) -> None:
    from dunetrace.integrations.pydantic_ai import DunetraceCapability

    def unapplied() -> list[str]:
        return [r.getMessage() for r in caplog.records if "has no DunetraceCapability" in r.getMessage()]

    with caplog.at_level("WARNING", logger="dunetrace"):
        dt.add_policy("cheaper", when={"tool_calls": 2}, then={"switch_model": "small"})
        assert unapplied() == []  # adding it says nothing: an agent may well have the capability
        served, made = _agent(3, DunetraceCapability(models={"small": pydantic_ai_agent.scripted_model(0)}))
        assert served.run_sync("Is a sea-view room free on 2026-12-24?").output.startswith("Breakfast")
        assert len(made) == 2 and unapplied() == []  # switched, so no warning
        for _ in range(2):
            plain, made = _agent(loops=3)
            assert plain.run_sync("Is a sea-view room free on 2026-12-24?").output.startswith("Sorry")
            assert len(made) == 4  # the planner answered every request: nothing was switched
    assert len(unapplied()) == 1
    assert "'cheaper' (switch_model)" in unapplied()[0] and "capabilities=[DunetraceCapability()]" in unapplied()[0]
