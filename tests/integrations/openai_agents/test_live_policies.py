"""``stop`` in real OpenAI Agents SDK runs with only ``instrument()``: the
runner it installs refuses the next model or tool call of a stopped run in
``Runner.run_sync``, ``Runner.run`` and ``Runner.run_streamed``, in handoffs
and in agents run as tools, and the run ends ``run.errored`` with
PolicyViolation at a real ingest server."""

from __future__ import annotations

import asyncio
import pickle
from collections.abc import Iterator
from typing import Any

import pytest
from agents.exceptions import AgentsException
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dunetrace import Dunetrace, PolicyViolation
from dunetrace.integrations.openai_agents import DunetracePolicyHooks, instrument, uninstrument
from tests.ingest_server import IngestServer
from tests.integrations.llamaindex.recorded import by_run, only

from .agents_offline import ScriptedResponses, StreamingResponses, responses_model

MODES = ("run_sync", "run", "run_streamed")


@pytest.fixture
def dt(ingest: IngestServer) -> Iterator[Dunetrace]:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05, detectors=True)  # the suite turns them off
    instrument(client, agent_id="rooms-bot", replace=True)
    yield client
    uninstrument()
    client.shutdown(timeout=5)


def run_agent(mode: str, agent: Any, question: str, **kwargs: Any) -> Any:
    """The agent's final output, asked through ``Runner.<mode>``."""
    from agents import Runner

    if mode == "run_sync":
        return Runner.run_sync(agent, question, **kwargs).final_output

    async def go() -> Any:
        if mode == "run":
            return (await Runner.run(agent, question, **kwargs)).final_output
        streamed = Runner.run_streamed(agent, question, **kwargs)
        async for _event in streamed.stream_events():
            pass
        return streamed.final_output

    return asyncio.run(go())


def looping_agent(
    loops: int, streaming: bool = False, name: str = "rooms", tool: str = "search"
) -> tuple[Any, ScriptedResponses, list[str]]:
    """An agent whose model asks for its tool (``search``) ``loops`` times,
    and the list of the tool's real invocations."""
    from agents import Agent, function_tool

    ran: list[str] = []

    def search(q: str) -> str:
        """Search free rooms."""
        ran.append(q)
        return f"nothing matches {q}"

    script = (StreamingResponses if streaming else ScriptedResponses)(loops, tool=tool)
    tools = [function_tool(search, name_override=tool)]
    agent = Agent(name=name, instructions="You book rooms.", tools=tools, model=responses_model(script))
    return agent, script, ran


@pytest.mark.parametrize("mode", MODES)
def test_a_stop_after_n_tool_calls_refuses_the_next_call(dt: Dunetrace, received: Any, mode: str) -> None:
    dt.add_policy("cap-search", when={"tool_calls": 3}, then="stop")
    agent, script, ran = looping_agent(loops=8, streaming=mode == "run_streamed")
    with pytest.raises(PolicyViolation, match="cap-search"):
        run_agent(mode, agent, "a room for friday")
    assert len(ran) == 3  # the fourth search never ran
    assert script.calls == 3  # the model call that would have asked for it was not sent
    events = received()
    assert len(only(events, "tool.called")) == 3
    signals = [e["payload"]["signal_name"] for e in only(events, "external.signal")]
    assert signals.count("POLICY_TRIGGERED") == 1
    assert events[-1]["event_type"] == "run.errored"
    assert events[-1]["payload"]["error_type"] == "PolicyViolation"


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cap=st.integers(min_value=1, max_value=5), mode=st.sampled_from(MODES))
def test_the_run_stops_at_any_cap(ingest: IngestServer, cap: int, mode: str) -> None:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    client.add_policy("cap", when={"tool_calls": cap}, then="stop")
    instrument(client, agent_id="rooms-bot", replace=True)
    seen = len(ingest.events)
    try:
        agent, script, ran = looping_agent(loops=cap + 2, streaming=mode == "run_streamed")
        with pytest.raises(PolicyViolation):
            run_agent(mode, agent, "a room")
        assert len(ran) == cap and script.calls == cap
        assert client.flush(5)
    finally:
        uninstrument()
        client.shutdown(timeout=5)
    events = ingest.events[seen:]
    assert len(only(events, "tool.called")) == cap
    assert events[-1]["event_type"] == "run.errored" and events[-1]["payload"]["error_type"] == "PolicyViolation"


def test_without_a_policy_nothing_changes(dt: Dunetrace, received: Any) -> None:
    seen: list[str] = []
    dt.on_signal(lambda signal: seen.append(signal.type))
    agent, script, ran = looping_agent(loops=6)
    assert run_agent("run_sync", agent, "a room for friday") == "none free "
    assert script.calls == 7 and len(ran) == 6
    assert "TOOL_LOOP" in seen
    events = received()
    assert len(only(events, "tool.called")) == 6
    assert events[-1]["event_type"] == "run.completed"


def test_a_signal_policy_stops_while_the_signal_is_live(dt: Dunetrace, received: Any) -> None:
    dt.add_policy("no-loops", when={"signal": "TOOL_LOOP"}, then="stop")
    seen: list[tuple[str, bool]] = []
    dt.on_signal(lambda signal: seen.append((signal.type, signal.run.finished)))
    agent, script, ran = looping_agent(loops=8)
    with pytest.raises(PolicyViolation, match="no-loops"):
        run_agent("run_sync", agent, "a room for friday")
    assert seen == [("TOOL_LOOP", False), ("POLICY_TRIGGERED", False)]
    assert script.calls == 3 and len(ran) == 3


@pytest.mark.parametrize("mode", MODES)
def test_the_old_hooks_line_is_harmless(dt: Dunetrace, received: Any, mode: str) -> None:
    # DunetracePolicyHooks was needed before instrument() installed a runner:
    # passed as well, the stop is raised once and counted once.
    dt.add_policy("cap-search", when={"tool_calls": 2}, then="stop")
    agent, script, ran = looping_agent(loops=8, streaming=mode == "run_streamed")
    with pytest.raises(PolicyViolation):
        run_agent(mode, agent, "a room", hooks=DunetracePolicyHooks())
    assert len(ran) == 2 and script.calls == 2
    events = received()
    assert len(only(events, "run.errored")) == 1
    assert [e["payload"]["signal_name"] for e in only(events, "external.signal")].count("POLICY_TRIGGERED") == 1
    # and the next run, with the same hooks object, is not stopped
    agent, _, _ = looping_agent(loops=1)
    assert run_agent("run_sync", agent, "a room", hooks=DunetracePolicyHooks()) == "none free "


def test_a_stop_in_one_run_leaves_the_next_run_alone(dt: Dunetrace, received: Any) -> None:
    dt.add_policy("cap-search", when={"tool_calls": 2}, then="stop")
    agent, _, _ = looping_agent(loops=8)
    with pytest.raises(PolicyViolation):
        run_agent("run_sync", agent, "a room")
    agent, _, _ = looping_agent(loops=1)
    assert run_agent("run_sync", agent, "a room") == "none free "
    assert received()[-1]["event_type"] == "run.completed"


def _handing_off(to: Any) -> Any:
    """A triage agent whose model hands off to ``to`` at once."""
    from agents import Agent

    class HandOff(ScriptedResponses):
        def __call__(self, request: Any) -> Any:
            response = super().__call__(request)
            body = response.json()
            body["output"][0]["name"] = f"transfer_to_{to.name}"
            body["output"][0]["arguments"] = "{}"
            import httpx

            return httpx.Response(200, json=body)

    return Agent(name="triage", instructions="Route.", handoffs=[to], model=responses_model(HandOff(1)))


def test_a_handoffs_agent_is_stopped_in_its_child_run(dt: Dunetrace, received: Any) -> None:
    dt.add_policy("cap-search", when={"tool_calls": 2}, then="stop")
    rooms, script, ran = looping_agent(loops=8)
    with pytest.raises(PolicyViolation):
        run_agent("run_sync", _handing_off(rooms), "a room please")
    assert len(ran) == 2 and script.calls == 2
    runs = by_run(received())
    (child,) = [r for r in runs.values() if r[0]["parent_run_id"] is not None]
    (top,) = [r for r in runs.values() if r[0]["parent_run_id"] is None]
    assert child[0]["agent_id"] == "rooms-bot.rooms"
    assert child[-1]["event_type"] == "run.errored" and child[-1]["payload"]["error_type"] == "PolicyViolation"
    assert top[-1]["event_type"] == "run.errored" and top[-1]["payload"]["error_type"] == "PolicyViolation"


def test_a_stop_in_an_agent_run_as_a_tool_stops_the_agent_that_called_it(dt: Dunetrace, received: Any) -> None:
    # The SDK hands a failed agent tool's error to the calling model as text;
    # the stop reaches the caller at its next model call all the same.
    from agents import Agent

    dt.add_policy("cap-search", when={"tool_calls": 2, "tool": "search"}, then="stop")
    rooms, inner_script, ran = looping_agent(loops=8)
    outer_script = ScriptedResponses(loops=3, tool="ask_rooms", arguments={"input": "a room"})
    outer = Agent(
        name="concierge",
        instructions="Ask the rooms expert.",
        tools=[rooms.as_tool(tool_name="ask_rooms", tool_description="Ask the rooms expert.")],
        model=responses_model(outer_script),
    )
    with pytest.raises(PolicyViolation, match="cap-search"):
        run_agent("run_sync", outer, "a room please")
    assert len(ran) == 2 and inner_script.calls == 2
    assert outer_script.calls == 1  # its second model call was refused
    runs = by_run(received())
    assert len(runs) == 2
    for events in runs.values():
        assert events[-1]["event_type"] == "run.errored"
        assert events[-1]["payload"]["error_type"] == "PolicyViolation"


def test_a_stop_after_a_model_call_refuses_the_tool_call_it_asked_for(dt: Dunetrace, received: Any) -> None:
    dt.add_policy("budget", when={"tokens": 100}, then="stop")  # the first call alone uses 159
    agent, script, ran = looping_agent(loops=3)
    with pytest.raises(PolicyViolation, match="budget") as stopped:
        run_agent("run_sync", agent, "a room")
    assert script.calls == 1 and ran == []
    # The SDK wraps what a tool call's hooks raise in a UserError unless it is
    # its own AgentsException: the stop is both, and named as the run says.
    assert isinstance(stopped.value, AgentsException) and type(stopped.value).__name__ == "PolicyViolation"
    again = pickle.loads(pickle.dumps(stopped.value))
    assert isinstance(again, PolicyViolation) and again.policy == "budget"
    events = received()
    assert only(events, "tool.called") == []
    assert events[-1]["payload"]["error_type"] == "PolicyViolation"


def test_the_hooks_alone_stop_a_run_of_a_processor_added_by_hand(ingest: IngestServer) -> None:
    # Without instrument(): the processor added yourself, the hooks given it.
    from agents.tracing import get_trace_provider, set_trace_processors

    from dunetrace.integrations.openai_agents import DunetraceTracingProcessor

    provider = get_trace_provider()
    before = provider._multi_processor._processors
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    client.add_policy("cap-search", when={"tool_calls": 2}, then="stop")
    processor = DunetraceTracingProcessor(client, agent_id="rooms-bot")
    set_trace_processors([processor])
    try:
        agent, script, ran = looping_agent(loops=6)
        with pytest.raises(PolicyViolation):
            run_agent("run", agent, "a room", hooks=DunetracePolicyHooks(processor))
        assert len(ran) == 2 and script.calls == 2
        assert client.flush(5)
    finally:
        set_trace_processors(list(before))
        client.shutdown(timeout=5)
    assert ingest.events[-1]["payload"]["error_type"] == "PolicyViolation"
