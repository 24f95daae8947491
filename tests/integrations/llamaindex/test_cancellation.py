"""Cancelled LlamaIndex runs, on real llama-index-core 0.14 agents: LlamaIndex
``handler.cancel_run()``, ``task.cancel()`` and ``asyncio.wait_for`` timeouts
during a model call and during a tool call, and Ctrl-C in a query. The call
in flight is answered as failed, the run ends ``cancelled``, and nothing
stays open."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool
from workflows import Workflow, step
from workflows.errors import WorkflowCancelledByUser
from workflows.events import StartEvent, StopEvent

from dunetrace.exit_reasons import CANCELLED, FINAL_ANSWER

from .fakes import Call, ScriptedLLM, StallingLLM
from .recorded import by_run, only, types, well_formed


class StallingTool:
    """A tool that stalls until cancelled; ``stalled`` says it started."""

    def __init__(self) -> None:
        self.stalled = asyncio.Event()

    async def wait_for_the_sea(self, port: str) -> str:
        """Wait for the tide in a port."""
        self.stalled.set()
        await asyncio.sleep(30)
        raise AssertionError("the tool was not cancelled")


def stalled_in_llm() -> tuple[FunctionAgent, asyncio.Event]:
    llm = StallingLLM([Call("lookup", {"city": "oslo"})])

    def lookup(city: str) -> str:
        """Look up a city."""
        return f"sunny in {city}"

    agent = FunctionAgent(tools=[FunctionTool.from_defaults(lookup)], llm=llm, streaming=False)
    return agent, llm.stalled


def stalled_in_tool() -> tuple[FunctionAgent, asyncio.Event]:
    tool = StallingTool()
    llm = ScriptedLLM([Call("wait_for_the_sea", {"port": "bergen"}), "High tide."])
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(async_fn=tool.wait_for_the_sea)], llm=llm, streaming=False)
    return agent, tool.stalled


async def by_cancel_run(agent: FunctionAgent, stalled: asyncio.Event) -> None:
    handler = agent.run("go")
    await asyncio.wait_for(stalled.wait(), 5)
    await handler.cancel_run()
    with pytest.raises(WorkflowCancelledByUser):
        await handler


async def by_task_cancel(agent: FunctionAgent, stalled: asyncio.Event) -> None:
    async def main() -> Any:
        return await agent.run("go")

    task = asyncio.ensure_future(main())
    await asyncio.wait_for(stalled.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def by_timeout(agent: FunctionAgent, stalled: asyncio.Event) -> None:
    async def main() -> Any:
        return await agent.run("go")

    async def watch() -> None:
        await asyncio.wait_for(stalled.wait(), 5)

    watcher = asyncio.ensure_future(watch())
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(main(), 0.5)
    await watcher  # the call had started before the timeout


CANCELLERS: dict[str, Callable[[FunctionAgent, asyncio.Event], Awaitable[None]]] = {
    "cancel_run": by_cancel_run,
    "task.cancel": by_task_cancel,
    "wait_for timeout": by_timeout,
}


async def settled(received: Any, count: int) -> list[dict[str, Any]]:
    # Cancellation unwinds the workflow's tasks after the caller resumes.
    for _ in range(100):
        events = received()
        if sum(e["event_type"] in ("run.completed", "run.errored") for e in events) >= count:
            return events
        await asyncio.sleep(0.02)
    raise AssertionError(f"no terminal event arrived: {types(received())}")


@pytest.mark.parametrize("how", list(CANCELLERS))
async def test_cancelled_during_a_model_call(instrumented: Any, received: Any, how: str) -> None:
    agent, stalled = stalled_in_llm()
    await CANCELLERS[how](agent, stalled)
    (events,) = by_run(await settled(received, 1)).values()
    well_formed(events)
    assert types(events)[-3:] == ["llm.called", "llm.responded", "run.completed"]
    assert only(events, "llm.responded")[-1]["payload"]["finish_reason"] == "error"
    assert events[-1]["payload"]["exit_reason"] == CANCELLED
    translator = instrumented.translator
    assert len(translator._runs) == 0 and translator._llm == {} and translator._spans == {}


@pytest.mark.parametrize("how", list(CANCELLERS))
async def test_cancelled_during_a_tool_call(instrumented: Any, received: Any, how: str) -> None:
    agent, stalled = stalled_in_tool()
    await CANCELLERS[how](agent, stalled)
    (events,) = by_run(await settled(received, 1)).values()
    well_formed(events)
    assert types(events)[-3:] == ["tool.called", "tool.responded", "run.completed"]
    assert only(events, "tool.responded")[0]["payload"]["success"] is False
    assert events[-1]["payload"]["exit_reason"] == CANCELLED
    assert len(instrumented.translator._runs) == 0 and instrumented.translator._spans == {}


def test_ctrl_c_in_a_query_ends_the_run_cancelled(instrumented: Any, received: Any) -> None:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.embeddings import MockEmbedding

    index = VectorStoreIndex.from_documents([Document(text="Oslo is cold.")], embed_model=MockEmbedding(embed_dim=8))
    engine = index.as_query_engine(llm=ScriptedLLM([KeyboardInterrupt()]))
    with pytest.raises(KeyboardInterrupt):
        engine.query("is Oslo cold?")
    (events,) = by_run(received()).values()
    well_formed(events)
    assert only(events, "llm.responded")[0]["payload"]["finish_reason"] == "error"
    assert events[-1]["event_type"] == "run.completed" and events[-1]["payload"]["exit_reason"] == CANCELLED


class SyncSteps(Workflow):
    """A sync step, which workflows 2.x runs in a worker thread."""

    def __init__(self, started: threading.Event, release: threading.Event) -> None:
        super().__init__()
        self.started = started
        self.release = release

    @step
    def crunch(self, ev: StartEvent) -> StopEvent:
        self.started.set()
        self.release.wait(10)
        return StopEvent(result="done")


async def test_cancel_run_during_a_sync_step_is_cancelled_not_interrupted(instrumented: Any, received: Any) -> None:
    started, release = threading.Event(), threading.Event()
    handler = SyncSteps(started, release).run(n=1)
    for _ in range(500):
        if started.is_set():
            break
        await asyncio.sleep(0.01)
    assert started.is_set()
    try:
        await handler.cancel_run()
        with pytest.raises(WorkflowCancelledByUser):
            await handler
    finally:
        release.set()
    events = await settled(received, 1)
    (run,) = by_run(events).values()
    assert run[-1]["payload"]["exit_reason"] == CANCELLED


async def test_concurrent_runs_keep_their_own_endings(instrumented: Any, received: Any) -> None:
    # Six agents at once on one loop: three are cancelled mid-call, three
    # answer; each run ends its own way and nothing is left behind.
    stalled = [stalled_in_tool() for _ in range(3)]
    answering = [
        FunctionAgent(
            tools=[FunctionTool.from_defaults(async_fn=StallingTool().wait_for_the_sea)],
            llm=ScriptedLLM([f"Calm in port {i}."]),
            streaming=False,
        )
        for i in range(3)
    ]
    handlers = [agent.run("go") for agent, _ in stalled]
    answers = await asyncio.gather(*(agent.run("go") for agent in answering))
    await asyncio.gather(*(asyncio.wait_for(event.wait(), 5) for _, event in stalled))
    for handler in handlers:
        await handler.cancel_run()
    for handler in handlers:
        with pytest.raises(WorkflowCancelledByUser):
            await handler
    assert sorted(map(str, answers)) == [f"Calm in port {i}." for i in range(3)]
    runs = by_run(await settled(received, 6)).values()
    endings = sorted(events[-1]["payload"]["exit_reason"] for events in runs)
    assert endings == [CANCELLED] * 3 + [FINAL_ANSWER] * 3
    for events in runs:
        well_formed(events)
    assert len(instrumented.translator._runs) == 0 and instrumented.translator._spans == {}
