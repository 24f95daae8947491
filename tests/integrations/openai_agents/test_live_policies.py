"""A real OpenAI Agents SDK agent looping on a tool, with the live detectors
on: TOOL_LOOP fires during the run, and a ``stop`` policy on it ends
``Runner.run`` with PolicyViolation through ``DunetracePolicyHooks`` (the
SDK drops what a trace processor raises, so the hooks are where it acts)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from dunetrace import Dunetrace, PolicyViolation
from dunetrace.integrations.openai_agents import DunetracePolicyHooks, instrument, uninstrument
from tests.ingest_server import IngestServer

from .agents_offline import ScriptedResponses, responses_model


@pytest.fixture(autouse=True)
def no_openai_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without a key the SDK's own exporter skips sending traces to OpenAI.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def dt(ingest: IngestServer) -> Iterator[Dunetrace]:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05, detectors=True)  # the suite turns them off
    instrument(client, agent_id="rooms-bot", replace=True)
    yield client
    uninstrument()
    client.shutdown(timeout=5)


@pytest.fixture
def received(dt: Dunetrace, ingest: IngestServer) -> Any:
    def get() -> list[dict[str, Any]]:
        assert dt.flush(5)
        return ingest.events

    return get


class StreamingResponses(ScriptedResponses):
    """The same script as server-sent events, each response whole in one
    ``response.completed`` event (for ``Runner.run_streamed``)."""

    def __call__(self, request: Any) -> Any:
        import httpx

        body = super().__call__(request).json()
        events = [
            {
                "type": "response.created",
                "sequence_number": 0,
                "response": {**body, "status": "in_progress", "output": []},
            },
            {"type": "response.completed", "sequence_number": 1, "response": body},
        ]
        text = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
        return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})


def _agent(loops: int, streaming: bool = False) -> tuple[Any, ScriptedResponses, list[str]]:
    from agents import Agent, function_tool

    ran: list[str] = []

    @function_tool
    def search(q: str) -> str:
        """Search free rooms."""
        ran.append(q)
        return f"nothing matches {q}"

    script = StreamingResponses(loops) if streaming else ScriptedResponses(loops)
    agent = Agent(name="rooms", instructions="You book rooms.", tools=[search], model=responses_model(script))
    return agent, script, ran


def test_a_tool_loop_policy_stops_the_run_through_the_hooks(dt: Dunetrace, received: Any) -> None:
    from agents import Runner

    dt.add_policy("no-loops", when={"signal": "TOOL_LOOP"}, then="stop")
    seen: list[tuple[str, bool]] = []
    dt.on_signal(lambda signal: seen.append((signal.type, signal.run.finished)))
    agent, script, ran = _agent(loops=8)
    with pytest.raises(PolicyViolation, match="no-loops"):
        Runner.run_sync(agent, "a room for friday", hooks=DunetracePolicyHooks())
    assert seen == [("TOOL_LOOP", False), ("POLICY_TRIGGERED", False)]
    assert script.calls == 3 and len(ran) == 3  # the fourth model call was refused before it was sent
    events = received()
    assert sum(e["event_type"] == "tool.called" for e in events) == 3
    assert sum(e["event_type"] == "llm.called" for e in events) == 3
    signals = [e["payload"]["signal_name"] for e in events if e["event_type"] == "external.signal"]
    assert signals == ["TOOL_LOOP", "POLICY_TRIGGERED"]
    assert events[-1]["event_type"] == "run.errored"
    assert events[-1]["payload"]["error_type"] == "PolicyViolation"


async def test_an_async_and_a_streamed_run_are_stopped_the_same_way(dt: Dunetrace, received: Any) -> None:
    from agents import Runner

    dt.add_policy("no-loops", when={"signal": "TOOL_LOOP"}, then="stop")
    agent, script, _ = _agent(loops=8)
    with pytest.raises(PolicyViolation):
        await Runner.run(agent, "a room for friday", hooks=DunetracePolicyHooks())
    assert script.calls == 3
    agent, script, _ = _agent(loops=8, streaming=True)
    streamed = Runner.run_streamed(agent, "a room for friday", hooks=DunetracePolicyHooks())
    with pytest.raises(PolicyViolation):
        async for _event in streamed.stream_events():
            pass
    assert script.calls == 3
    ends = [e for e in received() if e["event_type"] == "run.errored"]
    assert [e["payload"]["error_type"] for e in ends] == ["PolicyViolation", "PolicyViolation"]


def test_without_a_policy_the_hooks_change_nothing(dt: Dunetrace, received: Any) -> None:
    from agents import Runner

    seen: list[str] = []
    dt.on_signal(lambda signal: seen.append(signal.type))
    agent, script, ran = _agent(loops=6)
    result = Runner.run_sync(agent, "a room for friday", hooks=DunetracePolicyHooks())
    assert result.final_output == "none free "
    assert script.calls == 7 and len(ran) == 6
    assert "TOOL_LOOP" in seen
    events = received()
    assert sum(e["event_type"] == "tool.called" for e in events) == 6
    assert events[-1]["event_type"] == "run.completed"


def test_a_stop_in_one_run_leaves_the_next_run_alone(dt: Dunetrace, received: Any) -> None:
    from agents import Runner

    dt.add_policy("no-loops", when={"signal": "TOOL_LOOP"}, then="stop")
    hooks = DunetracePolicyHooks()
    agent, _, _ = _agent(loops=8)
    with pytest.raises(PolicyViolation):
        Runner.run_sync(agent, "a room for friday", hooks=hooks)
    agent, _, _ = _agent(loops=1)
    assert Runner.run_sync(agent, "a room for friday", hooks=hooks).final_output == "none free "
    assert received()[-1]["event_type"] == "run.completed"


def test_without_the_hooks_a_stop_is_reported_but_cannot_act(dt: Dunetrace, received: Any) -> None:
    # What the one line is for: the SDK drops what the trace processor
    # raises, so the run goes on to its answer, and the stop is on record.
    from agents import Runner

    dt.add_policy("no-loops", when={"signal": "TOOL_LOOP"}, then="stop")
    agent, script, _ = _agent(loops=6)
    assert Runner.run_sync(agent, "a room for friday").final_output == "none free "
    assert script.calls == 7
    events = received()
    signals = [e["payload"]["signal_name"] for e in events if e["event_type"] == "external.signal"]
    assert signals == ["TOOL_LOOP", "POLICY_TRIGGERED"]


def test_a_policy_it_cannot_apply_warns_once(dt: Dunetrace, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="dunetrace"):
        dt.add_policy("nudge", when={"signal": "TOOL_LOOP"}, then={"inject_prompt": "stop searching"})
    assert any("OpenAI Agents SDK cannot apply inject_prompt" in r.getMessage() for r in caplog.records)
