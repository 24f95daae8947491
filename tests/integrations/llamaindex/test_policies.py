"""Stop policies in real LlamaIndex agents and workflows (scripted LLM): the
looping agent gets PolicyViolation at its next model call, its run ends
run.errored PolicyViolation; switch_model and inject_prompt warn once."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent, ReActAgent
from llama_index.core.llms import ChatMessage
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import StartEvent, StopEvent, Workflow, step

from dunetrace import Dunetrace, PolicyViolation
from dunetrace import log as dunetrace_log
from dunetrace.integrations.llamaindex import instrument

from .fakes import Call, ScriptedLLM
from .recorded import by_run


def lookup(city: str) -> str:
    """Look up the weather in a city."""
    return f"sunny in {city}"


def looping_llm() -> ScriptedLLM:
    return ScriptedLLM([Call("lookup", {"city": "paris"})] * 10)


def assert_stopped(received: Any, tool_calls: int) -> None:
    runs = by_run(received())
    (events,) = runs.values()
    assert sum(e["event_type"] == "tool.called" for e in events) == tool_calls
    assert [
        e["payload"]["evidence"]["policy"] for e in events if e["payload"].get("signal_name") == "POLICY_TRIGGERED"
    ] == ["cap"]
    assert events[-1]["event_type"] == "run.errored"
    assert events[-1]["payload"]["error_type"] == "PolicyViolation"


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "as-shipped"])
@pytest.mark.parametrize("streaming", [True, False])
async def test_a_looping_function_agent_is_stopped(
    instrumented: Any, received: Any, dt: Dunetrace, strict: bool, streaming: bool
) -> None:
    dunetrace_log.strict = strict
    dt.add_policy("cap", when={"tool_calls": 3}, then="stop")
    llm = looping_llm()
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(lookup)], llm=llm, streaming=streaming)
    with pytest.raises(PolicyViolation, match="cap"):
        await agent.run("weather in paris?")
    assert llm._position == 3  # three model answers; the fourth call raised
    assert_stopped(received, 3)


async def test_an_agent_workflow_is_stopped(instrumented: Any, received: Any, dt: Dunetrace) -> None:
    dt.add_policy("cap", when={"tool_calls": 2}, then="stop")
    agent = FunctionAgent(name="weather", tools=[FunctionTool.from_defaults(lookup)], llm=looping_llm())
    with pytest.raises(PolicyViolation):
        await AgentWorkflow(agents=[agent]).run("weather in paris?")
    assert_stopped(received, 2)


async def test_a_react_agent_is_stopped(instrumented: Any, received: Any, dt: Dunetrace) -> None:
    dt.add_policy("cap", when={"tool_calls": 2}, then="stop")
    step = 'Thought: I need the weather.\nAction: lookup\nAction Input: {"city": "oslo"}'
    llm = ScriptedLLM([step] * 10)
    with pytest.raises(PolicyViolation):
        await ReActAgent(tools=[FunctionTool.from_defaults(lookup)], llm=llm).run("weather in oslo?")
    assert llm._position == 2
    assert_stopped(received, 2)


class LoopingWorkflow(Workflow):
    """A hand-written workflow whose one step keeps asking the model."""

    def __init__(self, llm: ScriptedLLM, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.llm = llm

    @step
    async def ask(self, ev: StartEvent) -> StopEvent:
        for _ in range(10):
            await self.llm.achat([ChatMessage(role="user", content="again?")])
        return StopEvent(result="never")


async def test_a_workflow_inside_a_run_is_stopped(instrumented: Any, received: Any, dt: Dunetrace) -> None:
    dt.add_policy("cap", when={"steps": 4}, then="stop")
    llm = ScriptedLLM(["no"] * 10)
    with pytest.raises(PolicyViolation):
        async with dt.run("workflow-agent"):
            await LoopingWorkflow(llm, timeout=10).run()
    # The fourth call's own start reaches the policy before LlamaIndex's
    # callback manager starts it: that call is the one refused.
    assert llm._position == 3
    events = received()
    assert events[-1]["payload"]["error_type"] == "PolicyViolation"


def test_actions_llamaindex_cannot_apply_warn_once(dt: Dunetrace, caplog: Any) -> None:
    dt.add_policy("cheaper", when={"steps": 3}, then={"switch_model": "small"})
    dt.add_policy("nudge", when={"steps": 3}, then={"inject_prompt": "x"})
    with caplog.at_level(logging.WARNING, logger="dunetrace"):
        instrument(dt, agent_id="li")
        instrument(dt, agent_id="li")
    assert caplog.text.count("LlamaIndex cannot apply switch_model") == 1
    assert caplog.text.count("LlamaIndex cannot apply inject_prompt") == 1
