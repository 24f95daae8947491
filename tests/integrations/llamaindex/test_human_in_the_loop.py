"""Human in the loop on real llama-index-core 0.14 / llama-index-workflows
2.x: ``ctx.wait_for_event`` with ``InputRequiredEvent`` and
``HumanResponseEvent``, in a custom Workflow step and inside an agent's tool.

Answered in the same handler, LlamaIndex keeps one run open across the
wait. Saved (``handler.ctx.to_dict()``), cancelled and resumed later with
``workflow.run(ctx=Context.from_dict(...))``, the first run ends
``interrupted`` and the resumed one names it in ``resumed_from``."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent
from llama_index.core.tools import FunctionTool
from workflows import Context, Workflow, step
from workflows.events import HumanResponseEvent, InputRequiredEvent, StartEvent, StopEvent

from dunetrace.exit_reasons import FINAL_ANSWER, INTERRUPTED

from .context_tools import approve
from .fakes import Call, ScriptedLLM
from .recorded import by_run, only, types, well_formed


class Approval(Workflow):
    @step
    async def ask(self, ctx: Context, ev: StartEvent) -> StopEvent:
        answer = await ctx.wait_for_event(HumanResponseEvent, waiter_event=InputRequiredEvent(prefix="ship it?"))
        return StopEvent(result=f"{ev.get('topic')}: {answer.response}")


def approving_agent(streaming: bool = False) -> FunctionAgent:
    return FunctionAgent(
        name="deployer",
        tools=[FunctionTool.from_defaults(approve)],
        llm=ScriptedLLM([Call("approve", {"action": "deploy"}), "Deployed."]),
        system_prompt="You deploy with approval.",
        streaming=streaming,
    )


async def answer_in_place(handler: Any, response: str) -> Any:
    async for event in handler.stream_events():
        if isinstance(event, InputRequiredEvent):
            handler.ctx.send_event(HumanResponseEvent(response=response))
    return await handler


async def pause(handler: Any) -> dict[str, Any]:
    """The documented pattern: save the context at the question, cancel."""
    async for event in handler.stream_events():
        if isinstance(event, InputRequiredEvent):
            break
    saved = handler.ctx.to_dict()
    await handler.cancel_run()
    return saved


async def test_a_workflow_answered_in_place_is_one_run(instrumented: Any, received: Any) -> None:
    assert await answer_in_place(Approval().run(topic="release"), "yes") == "release: yes"
    (events,) = by_run(received()).values()
    well_formed(events)
    assert types(events) == ["run.started", "run.completed"]
    assert events[-1]["payload"]["exit_reason"] == FINAL_ANSWER


class ApprovalBySteps(Workflow):
    """The other pattern: one step asks by returning InputRequiredEvent,
    another takes the HumanResponseEvent the caller sends."""

    @step
    async def ask(self, ctx: Context, ev: StartEvent) -> InputRequiredEvent:
        await ctx.store.set("topic", ev.get("topic"))
        return InputRequiredEvent(prefix="ship it?")

    @step
    async def answer(self, ctx: Context, ev: HumanResponseEvent) -> StopEvent:
        return StopEvent(result=f"{await ctx.store.get('topic')}: {ev.response}")


@pytest.mark.parametrize("flow", [Approval, ApprovalBySteps])
async def test_a_paused_workflow_is_interrupted_and_its_resumption_names_it(
    instrumented: Any, received: Any, flow: type[Workflow]
) -> None:
    workflow = flow()
    saved = await pause(workflow.run(topic="release"))
    resumed = workflow.run(ctx=Context.from_dict(workflow, saved))
    resumed.ctx.send_event(HumanResponseEvent(response="later"))
    assert await resumed == "release: later"

    events = received()
    first, second = by_run(events).values()
    well_formed(first)
    well_formed(second)
    assert first[-1]["event_type"] == "run.completed" and first[-1]["payload"]["exit_reason"] == INTERRUPTED
    assert second[0]["payload"]["resumed_from"] == first[0]["run_id"]
    assert "resumed_from" not in first[0]["payload"]
    assert second[0]["agent_version"] == first[0]["agent_version"]
    assert second[-1]["payload"]["exit_reason"] == FINAL_ANSWER
    assert events.index(first[-1]) < events.index(second[0])  # the pause ended before the resumption began


async def test_a_custom_start_event_is_the_run_input(instrumented: Any, received: Any) -> None:
    await answer_in_place(Approval().run(topic="release"), "yes")
    await answer_in_place(Approval().run(topic="release"), "yes")
    await answer_in_place(Approval().run(topic="hotfix"), "yes")
    hashes = [run[0]["payload"]["input_hash"] for run in by_run(received()).values()]
    assert hashes[0] == hashes[1] != hashes[2]


@pytest.mark.parametrize("streaming", [False, True])
async def test_a_tool_waiting_for_a_human_in_place_is_one_call(
    instrumented: Any, received: Any, streaming: bool
) -> None:
    result = await answer_in_place(approving_agent(streaming).run("deploy it"), "yes")
    assert str(result) == "Deployed."
    (events,) = by_run(received()).values()
    well_formed(events)
    (called,) = only(events, "tool.called")
    (responded,) = only(events, "tool.responded")
    assert called["payload"]["tool_name"] == "approve" and responded["payload"]["success"] is True
    assert responded["payload"]["output_length"] == len("the human said yes")
    assert events[-1]["payload"]["exit_reason"] == FINAL_ANSWER


def as_workflow(kind: str) -> Any:
    agent = approving_agent()
    return agent if kind == "FunctionAgent" else AgentWorkflow(agents=[agent], root_agent="deployer")


@pytest.mark.parametrize("kind", ["FunctionAgent", "AgentWorkflow"])
async def test_a_tool_paused_for_a_human_interrupts_the_run_and_the_resumed_run_names_it(
    instrumented: Any, received: Any, kind: str
) -> None:
    agent = as_workflow(kind)
    saved = await pause(agent.run("deploy it"))
    resumed = agent.run(ctx=Context.from_dict(agent, saved))
    resumed.ctx.send_event(HumanResponseEvent(response="yes"))
    assert str(await resumed) == "Deployed."

    first, second = by_run(received()).values()
    well_formed(first)  # the call the pause cut is answered, as failed
    well_formed(second)
    assert types(first) == [
        "run.started",
        "llm.called",
        "llm.responded",
        "tool.called",
        "tool.responded",
        "run.completed",
    ]
    assert only(first, "tool.responded")[0]["payload"]["success"] is False
    assert first[-1]["payload"]["exit_reason"] == INTERRUPTED
    assert second[0]["payload"]["resumed_from"] == first[0]["run_id"]
    for key in ("tools", "model"):
        assert second[0]["payload"][key] == first[0]["payload"][key]
    assert second[0]["agent_version"] == first[0]["agent_version"]
    # The tool runs again with the answer in the resumed run.
    assert [e["payload"]["success"] for e in only(second, "tool.responded")] == [True]
    assert second[-1]["payload"]["exit_reason"] == FINAL_ANSWER


async def test_two_paused_runs_are_resumed_latest_first(instrumented: Any, received: Any) -> None:
    workflow = Approval()
    early = await pause(workflow.run(topic="a"))
    late = await pause(workflow.run(topic="b"))
    for saved in (late, early):
        resumed = workflow.run(ctx=Context.from_dict(workflow, saved))
        resumed.ctx.send_event(HumanResponseEvent(response="ok"))
        await resumed
    runs = list(by_run(received()).values())
    assert [run[0]["payload"].get("resumed_from") for run in runs] == [
        None,
        None,
        runs[1][0]["run_id"],
        runs[0][0]["run_id"],
    ]
    assert len(instrumented.translator._paused) == 0


async def test_a_second_turn_on_the_same_context_is_not_a_resumption(instrumented: Any, received: Any) -> None:
    agent = FunctionAgent(llm=ScriptedLLM(["Hello.", "Again."]), streaming=False)
    ctx = Context(agent)
    await pause(approving_agent().run("deploy it"))  # a paused FunctionAgent run is waiting
    assert str(await agent.run("hi", ctx=ctx)) == "Hello."
    assert str(await agent.run("once more", ctx=ctx)) == "Again."
    runs = list(by_run(received()).values())
    assert len(runs) == 3
    assert all("resumed_from" not in run[0]["payload"] for run in runs)
    assert len(instrumented.translator._paused) == 1


async def test_a_resumed_run_is_linked_only_to_a_paused_run_of_the_same_configuration(
    instrumented: Any, received: Any
) -> None:
    deployer = approving_agent()
    saved = await pause(deployer.run("deploy it"))
    other = FunctionAgent(
        name="auditor",
        tools=[FunctionTool.from_defaults(approve)],
        llm=ScriptedLLM([Call("approve", {"action": "audit"}), "Audited."]),
        system_prompt="You audit with approval.",
        streaming=False,
    )
    await pause(other.run("audit it"))
    resumed = deployer.run(ctx=Context.from_dict(deployer, saved))
    resumed.ctx.send_event(HumanResponseEvent(response="yes"))
    assert str(await resumed) == "Deployed."
    first, _, third = by_run(received()).values()
    assert third[0]["payload"]["resumed_from"] == first[0]["run_id"]  # not the auditor's, paused later
