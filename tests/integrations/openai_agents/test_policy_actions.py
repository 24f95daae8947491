"""``switch_model`` and ``inject_prompt`` in real OpenAI Agents SDK runs
with only ``instrument()``, and how the runner it installs lives beside the
caller's hooks, input filter and RunConfig, and beside other runners."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dunetrace import Dunetrace, PolicyViolation
from dunetrace.integrations.openai_agents import DunetraceAgentRunner, instrument, uninstrument
from tests.ingest_server import IngestServer
from tests.integrations.llamaindex.recorded import by_run, only

from .agents_offline import ScriptedResponses, models_by_name, responses_model
from .test_live_policies import MODES, looping_agent, run_agent

NUDGE = "Stop searching; answer with what you have."


@pytest.fixture(autouse=True)
def sdk_runner() -> Iterator[Any]:
    """The SDK's default runner, put back whatever a test left."""
    from agents.run import get_default_agent_runner, set_default_agent_runner

    before = get_default_agent_runner()
    yield before
    set_default_agent_runner(before)


@pytest.fixture
def dt(ingest: IngestServer) -> Iterator[Dunetrace]:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    instrument(client, agent_id="rooms-bot", replace=True)
    yield client
    uninstrument()
    client.shutdown(timeout=5)


def two_model_agent(loops: int, streaming: bool) -> tuple[Any, ScriptedResponses, Any]:
    """A looping agent on the model ``gpt-big`` (a Model instance), the
    script both models answer from, and a RunConfig whose provider knows
    ``gpt-small``."""
    from agents import RunConfig

    agent, script, _ = looping_agent(loops, streaming)
    agent.model = responses_model(script, "gpt-big")
    config = RunConfig(model_provider=models_by_name({"gpt-small": responses_model(script, "gpt-small")}))
    return agent, script, config


@pytest.mark.parametrize("mode", MODES)
def test_switch_model_sends_the_later_calls_to_the_other_model(dt: Dunetrace, received: Any, mode: str) -> None:
    dt.add_policy("cheaper", when={"tool_calls": 2}, then={"switch_model": "gpt-small"})
    agent, script, config = two_model_agent(loops=4, streaming=mode == "run_streamed")
    assert run_agent(mode, agent, "a room", run_config=config) == "none free "
    assert script.models == ["gpt-big", "gpt-big", "gpt-small", "gpt-small", "gpt-small"]
    assert config.model is None  # the caller's RunConfig is left as it was
    calls = only(received(), "llm.called")
    assert [e["payload"]["model"] for e in calls] == script.models


def test_a_model_name_the_provider_does_not_know_keeps_the_agents_model(
    dt: Dunetrace, received: Any, caplog: pytest.LogCaptureFixture
) -> None:
    dt.add_policy("cheaper", when={"tool_calls": 1}, then={"switch_model": "gpt-unknown"})
    agent, script, config = two_model_agent(loops=3, streaming=False)
    with caplog.at_level("WARNING", logger="dunetrace"):
        assert run_agent("run_sync", agent, "a room", run_config=config) == "none free "
    assert script.models == ["gpt-big"] * 4
    warned = [r.getMessage() for r in caplog.records if "gpt-unknown" in r.getMessage()]
    assert len(warned) == 1 and "keeps its model" in warned[0]


def _user_items(items: Any) -> list[str]:
    return [i["content"] for i in items if isinstance(i, dict) and i.get("role") == "user"]


@pytest.mark.parametrize("mode", MODES)
def test_inject_prompt_reaches_the_next_model_call_once(dt: Dunetrace, mode: str) -> None:
    dt.add_policy("nudge", when={"tool_calls": 2}, then={"inject_prompt": NUDGE})
    agent, script, _ = looping_agent(loops=4, streaming=mode == "run_streamed")
    run_agent(mode, agent, "a room")
    asked = [_user_items(items) for items in script.inputs]
    assert asked[:2] == [["a room"], ["a room"]]
    assert asked[2] == ["a room", NUDGE]  # at the end of the third call's input
    assert script.inputs[2][-1] == {"role": "user", "content": NUDGE}
    assert all(NUDGE not in json.dumps(items) for items in script.inputs[3:])  # handed out once


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(min_size=1, max_size=300).filter(str.strip), after=st.integers(min_value=1, max_value=3))
def test_any_injected_text_is_sent_as_it_is_once(ingest: IngestServer, text: str, after: int) -> None:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    client.add_policy("nudge", when={"tool_calls": after}, then={"inject_prompt": text})
    instrument(client, agent_id="rooms-bot", replace=True)
    try:
        agent, script, _ = looping_agent(loops=after + 1)
        run_agent("run_sync", agent, "a room")
    finally:
        uninstrument()
        client.shutdown(timeout=5)
    carrying = [i for i, items in enumerate(script.inputs) if {"role": "user", "content": text} in items]
    assert carrying == [after]
    assert script.inputs[after][-1] == {"role": "user", "content": text}


def test_the_callers_filter_runs_first_and_never_sees_the_injection(dt: Dunetrace) -> None:
    from agents import RunConfig
    from agents.run_config import ModelInputData

    seen: list[list[str]] = []

    async def theirs(data: Any) -> Any:  # an async filter, awaited before ours
        seen.append(_user_items(data.model_data.input))
        items = [*data.model_data.input, {"role": "user", "content": "from the caller's filter"}]
        return ModelInputData(input=items, instructions=data.model_data.instructions)

    dt.add_policy("nudge", when={"tool_calls": 1}, then={"inject_prompt": NUDGE})
    config = RunConfig(call_model_input_filter=theirs)
    agent, script, _ = looping_agent(loops=2)
    run_agent("run", agent, "a room", run_config=config)
    assert len(seen) == 3 and all(NUDGE not in s for s in seen)
    assert _user_items(script.inputs[1]) == ["a room", "from the caller's filter", NUDGE]
    assert _user_items(script.inputs[2]) == ["a room", "from the caller's filter"]
    assert config.call_model_input_filter is theirs


def test_the_callers_hooks_hear_every_callback_and_ours_act_first(dt: Dunetrace, sdk_runner: Any) -> None:
    from agents import RunHooks

    class Recording(RunHooks[Any]):
        def __init__(self) -> None:
            self.heard: list[str] = []

        async def on_agent_start(self, context: Any, agent: Any) -> None:
            self.heard.append("agent_start")

        async def on_llm_start(self, context: Any, agent: Any, system_prompt: Any, input_items: Any) -> None:
            self.heard.append("llm_start")

        async def on_llm_end(self, context: Any, agent: Any, response: Any) -> None:
            self.heard.append("llm_end")

        async def on_tool_start(self, context: Any, agent: Any, tool: Any) -> None:
            self.heard.append("tool_start")

        async def on_tool_end(self, context: Any, agent: Any, tool: Any, result: Any) -> None:
            self.heard.append("tool_end")

        async def on_agent_end(self, context: Any, agent: Any, output: Any) -> None:
            self.heard.append("agent_end")

    instrumented, alone = Recording(), Recording()
    run_agent("run_sync", looping_agent(loops=2)[0], "a room", hooks=instrumented)
    sdk_runner.run_sync(looping_agent(loops=2)[0], "a room", hooks=alone)  # the SDK's runner, no Dunetrace
    assert instrumented.heard == alone.heard and "tool_end" in alone.heard

    dt.add_policy("cap", when={"tool_calls": 1}, then="stop")
    stopped = Recording()
    with pytest.raises(PolicyViolation):
        run_agent("run_sync", looping_agent(loops=3)[0], "a room", hooks=stopped)
    # the refused model call is refused before the caller's hook hears of it
    assert stopped.heard == ["agent_start", "llm_start", "llm_end", "tool_start", "tool_end"]


def test_uninstrument_puts_back_the_runner_that_was_there(ingest: IngestServer) -> None:
    from agents.run import AgentRunner, get_default_agent_runner, set_default_agent_runner

    class Counting(AgentRunner):
        calls = 0

        def run_sync(self, *args: Any, **kwargs: Any) -> Any:
            Counting.calls += 1
            return super().run_sync(*args, **kwargs)

    mine = Counting()
    set_default_agent_runner(mine)
    client = Dunetrace(endpoint=ingest.url)
    instrument(client, agent_id="rooms-bot")
    ours = get_default_agent_runner()
    assert isinstance(ours, DunetraceAgentRunner) and ours.inner is mine
    assert instrument(client, agent_id="rooms-bot") and get_default_agent_runner() is ours  # idempotent
    run_agent("run_sync", looping_agent(loops=1)[0], "a room")
    assert Counting.calls == 1  # the runner that was there still runs the agent
    instrument(client, agent_id="front-desk")  # another replaces the first, not stacked on it
    again = get_default_agent_runner()
    assert again is not ours and again.inner is mine and ours.processor is None
    uninstrument()
    assert get_default_agent_runner() is mine
    instrument(client, agent_id="rooms-bot")
    client.shutdown(timeout=5)  # shutdown takes it off too
    assert get_default_agent_runner() is mine


def test_a_runner_set_after_ours_is_left_in_place(ingest: IngestServer, caplog: pytest.LogCaptureFixture) -> None:
    from agents.run import AgentRunner, get_default_agent_runner, set_default_agent_runner

    client = Dunetrace(endpoint=ingest.url)
    client.add_policy("cap", when={"tool_calls": 1}, then="stop")
    instrument(client, agent_id="rooms-bot")
    ours = get_default_agent_runner()

    class Theirs(AgentRunner):  # wraps whatever was the default, as ours does
        def run_sync(self, *args: Any, **kwargs: Any) -> Any:
            return ours.run_sync(*args, **kwargs)

    theirs = Theirs()
    set_default_agent_runner(theirs)
    with caplog.at_level("WARNING", logger="dunetrace"):
        uninstrument()
    assert get_default_agent_runner() is theirs
    assert any("runner was replaced after instrument()" in r.getMessage() for r in caplog.records)
    agent, _, ran = looping_agent(loops=3)
    assert run_agent("run_sync", agent, "a room") == "none free "  # ours only passes calls on now
    assert len(ran) == 3
    client.shutdown(timeout=5)


def test_policies_of_concurrent_runs_stay_apart(dt: Dunetrace, received: Any) -> None:
    from agents import Agent, Runner, function_tool

    dt.add_policy("cap-search", when={"tool_calls": 3, "tool": "search"}, then="stop")
    dt.add_policy("nudge", when={"tool_calls": 2, "tool": "lookup"}, then={"inject_prompt": NUDGE})
    order: list[str] = []

    @function_tool
    async def search(q: str) -> str:
        """Search free rooms."""
        order.append("search")
        await asyncio.sleep(0.01)
        return "nothing"

    @function_tool
    async def lookup(q: str) -> str:
        """Look a guest up."""
        order.append("lookup")
        await asyncio.sleep(0.01)
        return "nobody"

    searching, looking = ScriptedResponses(8), ScriptedResponses(5, tool="lookup")
    a = Agent(name="searcher", tools=[search], model=responses_model(searching))
    b = Agent(name="looker", tools=[lookup], model=responses_model(looking))

    async def both() -> list[Any]:
        return await asyncio.gather(Runner.run(a, "find"), Runner.run(b, "who"), return_exceptions=True)

    stopped, finished = asyncio.run(both())
    assert isinstance(stopped, PolicyViolation)
    assert finished.final_output == "none free "
    assert order.count("search") == 3 and order.count("lookup") == 5
    first_lookup, last_lookup = order.index("lookup"), len(order) - 1 - order[::-1].index("lookup")
    assert first_lookup < order.index("search", 2) < last_lookup  # the runs did overlap
    assert sum(NUDGE in json.dumps(items) for items in searching.inputs) == 0
    assert sum(NUDGE in json.dumps(items) for items in looking.inputs) == 1
    runs = list(by_run(received()).values())
    assert len(runs) == 2
    for events in runs:
        tools = {e["payload"]["tool_name"] for e in only(events, "tool.called")}
        if tools == {"search"}:
            assert events[-1]["event_type"] == "run.errored"
            assert events[-1]["payload"]["error_type"] == "PolicyViolation"
        else:
            assert tools == {"lookup"} and events[-1]["event_type"] == "run.completed"


def test_every_action_is_applied_without_a_warning(ingest: IngestServer, caplog: pytest.LogCaptureFixture) -> None:
    client = Dunetrace(endpoint=ingest.url)
    with caplog.at_level("WARNING", logger="dunetrace"):
        instrument(client, agent_id="rooms-bot")
        client.add_policy("a", when={"steps": 3}, then={"switch_model": "gpt-small"})
        client.add_policy("b", when={"steps": 3}, then={"inject_prompt": NUDGE})
        client.add_policy("c", when={"steps": 3}, then="stop")
    uninstrument()
    client.shutdown(timeout=5)
    assert not [r for r in caplog.records if "cannot apply" in r.getMessage()]


def test_a_run_config_given_as_a_dict_is_composed_as_the_sdk_reads_it(dt: Dunetrace) -> None:
    dt.add_policy("nudge", when={"tool_calls": 1}, then={"inject_prompt": NUDGE})
    agent, script, _ = looping_agent(loops=1)
    run_agent("run_sync", agent, "a room", run_config={"workflow_name": "rooms"})
    assert script.inputs[1][-1] == {"role": "user", "content": NUDGE}


def test_what_the_sdk_refuses_is_refused_with_its_own_message(dt: Dunetrace) -> None:
    from agents import AgentHooks

    agent, script, _ = looping_agent(loops=1)
    with pytest.raises(TypeError, match="Run hooks must be instances of RunHooks"):
        run_agent("run_sync", agent, "a room", hooks=AgentHooks())
    with pytest.raises(TypeError):
        run_agent("run_sync", agent, "a room", run_config={"no_such_setting": 1})
    assert script.calls == 0


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,39}", fullmatch=True))
def test_any_model_name_the_provider_knows_is_switched_to(ingest: IngestServer, name: str) -> None:
    from agents import RunConfig

    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    client.add_policy("switch", when={"tool_calls": 1}, then={"switch_model": name})
    instrument(client, agent_id="rooms-bot", replace=True)
    seen = len(ingest.events)
    try:
        agent, script, _ = looping_agent(loops=2)
        agent.model = responses_model(script, "gpt-big")
        provider = models_by_name({name: responses_model(script, name)})
        run_agent("run_sync", agent, "a room", run_config=RunConfig(model_provider=provider))
        assert client.flush(5)
    finally:
        uninstrument()
        client.shutdown(timeout=5)
    expected = ["gpt-big", name, name] if name != "gpt-big" else ["gpt-big"] * 3
    assert script.models == expected and provider.asked == [name]
    assert [e["payload"]["model"] for e in only(ingest.events[seen:], "llm.called")] == expected


@pytest.mark.parametrize("conversation", [{"auto_previous_response_id": True}, {"conversation_id": "conv-1"}])
def test_inject_prompt_in_a_conversation_the_server_keeps(dt: Dunetrace, conversation: dict[str, Any]) -> None:
    # Only the new items go to the server each turn; the message is one of them once.
    dt.add_policy("nudge", when={"tool_calls": 1}, then={"inject_prompt": NUDGE})
    agent, script, _ = looping_agent(loops=2)
    assert run_agent("run_sync", agent, "a room", **conversation) == "none free "
    assert script.inputs[1][-1] == {"role": "user", "content": NUDGE}
    assert [i for i, items in enumerate(script.inputs) if NUDGE in json.dumps(items)] == [1]


def test_a_runner_built_by_hand_says_what_it_needs(dt: Dunetrace, sdk_runner: Any) -> None:
    with pytest.raises(TypeError, match="wraps an agent runner"):
        DunetraceAgentRunner(object(), None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="DunetraceTracingProcessor"):
        DunetraceAgentRunner(sdk_runner, dt)  # type: ignore[arg-type]


def test_policies_of_runs_in_threads_stay_apart(dt: Dunetrace, received: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    dt.add_policy("cap-search", when={"tool_calls": 2, "tool": "search"}, then="stop")
    searcher, _, searched = looping_agent(loops=6)
    looker, _, looked = looping_agent(loops=4, tool="lookup")

    with ThreadPoolExecutor(max_workers=2) as pool:
        stopped = pool.submit(run_agent, "run_sync", searcher, "find")
        finished = pool.submit(run_agent, "run_sync", looker, "who")
        with pytest.raises(PolicyViolation):
            stopped.result(timeout=60)
        assert finished.result(timeout=60) == "none free "
    assert len(searched) == 2 and len(looked) == 4
    ends = sorted(r[-1]["event_type"] for r in by_run(received()).values())
    assert ends == ["run.completed", "run.errored"]
