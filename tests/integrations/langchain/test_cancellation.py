"""Cancellation on real LangGraph agents: ``task.cancel()``, an
``asyncio.wait_for`` timeout and ``KeyboardInterrupt``, during a model call
and during a tool call, under ainvoke / astream and invoke / stream. The open
call is answered as failed, the run ends ``cancelled``, nothing stays open."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import pytest
from langchain.agents import create_agent
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.tools import tool

import dunetrace
from dunetrace import Dunetrace
from dunetrace.exit_reasons import CANCELLED
from dunetrace.integrations.langchain import DunetraceCallbackHandler

from .conftest import delivered, runs_of, well_formed
from .fakes import ScriptedChatModel, call, question


class WaitingModel(ScriptedChatModel):
    """Answers after ``pause`` seconds (async), or raises KeyboardInterrupt
    when ``interrupt`` is set (sync); ``entered`` tells a test it is inside."""

    entered: ClassVar[asyncio.Event | None] = None
    pause: float = 0.0
    interrupt: bool = False

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        if self.interrupt:
            raise KeyboardInterrupt
        return super()._generate(messages, *args, **kwargs)

    async def _agenerate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        if self.interrupt:
            raise KeyboardInterrupt
        if WaitingModel.entered is not None:
            WaitingModel.entered.set()
        await asyncio.sleep(self.pause)
        return super()._generate(messages, *args, **kwargs)


_tool_entered: list[asyncio.Event] = []


@tool
async def slow_lookup(query: str) -> str:
    """Look something up, slowly."""
    _tool_entered[0].set()
    await asyncio.sleep(30)
    return "never"


@tool
def interrupted_lookup(query: str) -> str:
    """Look something up; the user presses Ctrl-C meanwhile."""
    raise KeyboardInterrupt


def waiting_agent(where: str) -> Any:
    if where == "model":
        model = WaitingModel(script=["an answer"], pause=30)
    else:
        model = WaitingModel(script=[[call("slow_lookup", query="q")], "an answer"])
    return create_agent(model, [slow_lookup])


def cancelled_run(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (run,) = runs_of(events).values()
    well_formed(run)  # every call answered, the terminal last
    assert run[-1]["event_type"] == "run.completed"
    assert run[-1]["payload"]["exit_reason"] == CANCELLED
    return run


def answered_as_failed(run: list[dict[str, Any]], where: str) -> None:
    if where == "model":
        replies = [e["payload"] for e in run if e["event_type"] == "llm.responded"]
        assert replies[-1]["finish_reason"] == "error"
    else:
        replies = [e["payload"] for e in run if e["event_type"] == "tool.responded"]
        assert [(r["tool_name"], r["success"]) for r in replies] == [(replies[-1]["tool_name"], False)]


@pytest.mark.parametrize("mode", ["ainvoke", "astream"])
@pytest.mark.parametrize("how", ["cancel", "wait_for"])
@pytest.mark.parametrize("where", ["model", "tool"])
async def test_cancelled_during_a_call(
    where: str, how: str, mode: str, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    entered = asyncio.Event()
    WaitingModel.entered = entered if where == "model" else None
    _tool_entered[:] = [entered]
    graph = waiting_agent(where)

    async def run_agent() -> Any:
        if mode == "ainvoke":
            return await graph.ainvoke(question(), config={"callbacks": [handler]})
        return [chunk async for chunk in graph.astream(question(), config={"callbacks": [handler]})]

    try:
        if how == "cancel":
            task = asyncio.ensure_future(run_agent())
            await asyncio.wait_for(entered.wait(), 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        else:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(run_agent(), 0.5)
            assert entered.is_set()
    finally:
        WaitingModel.entered = None
    run = cancelled_run(delivered(dt, ingest))
    answered_as_failed(run, where)
    assert handler.translator.live() == (0, 0)
    assert dunetrace.get_current_run() is None


@pytest.mark.parametrize("mode", ["invoke", "stream"])
@pytest.mark.parametrize("where", ["model", "tool"])
def test_keyboard_interrupt_during_a_call(
    where: str, mode: str, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    if where == "model":
        graph = create_agent(WaitingModel(script=["an answer"], interrupt=True), [interrupted_lookup])
    else:
        script = [[call("interrupted_lookup", query="q")], "an answer"]
        graph = create_agent(WaitingModel(script=script), [interrupted_lookup])
    with pytest.raises(KeyboardInterrupt):
        if mode == "invoke":
            graph.invoke(question(), config={"callbacks": [handler]})
        else:
            list(graph.stream(question(), config={"callbacks": [handler]}))
    run = cancelled_run(delivered(dt, ingest))
    answered_as_failed(run, where)
    assert handler.translator.live() == (0, 0)


def test_keyboard_interrupt_under_ainvoke(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    # asyncio hands a KeyboardInterrupt raised in a task to the loop's caller
    # and cancels the rest (Python 3.11): LangChain sees a cancellation.
    graph = create_agent(WaitingModel(script=["an answer"], interrupt=True), [interrupted_lookup])

    async def run_agent() -> None:
        await graph.ainvoke(question(), config={"callbacks": [handler]})

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(run_agent())
    run = cancelled_run(delivered(dt, ingest))
    answered_as_failed(run, "model")
    assert handler.translator.live() == (0, 0)


def test_a_failure_still_errors(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    @tool
    def broken(query: str) -> str:
        """Always fails."""
        raise ValueError("no")

    graph = create_agent(WaitingModel(script=[[call("broken", query="q")], "x"]), [broken])
    with pytest.raises(ValueError):
        graph.invoke(question(), config={"callbacks": [handler]})
    (run,) = runs_of(delivered(dt, ingest)).values()
    well_formed(run)
    assert run[-1]["event_type"] == "run.errored"
    assert run[-1]["payload"]["error_type"] == "ValueError"


async def test_a_sync_tool_still_running_in_its_thread_after_the_cancel(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    import threading

    entered, release, done = threading.Event(), threading.Event(), threading.Event()

    @tool
    def blocking_lookup(query: str) -> str:
        """Look something up in a blocking library."""
        entered.set()
        release.wait(10)
        done.set()
        return "late"

    graph = create_agent(WaitingModel(script=[[call("blocking_lookup", query="q")], "x"]), [blocking_lookup])
    task = asyncio.ensure_future(graph.ainvoke(question(), config={"callbacks": [handler]}))
    assert await asyncio.to_thread(entered.wait, 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    release.set()  # the tool returns in its executor thread, after the run ended
    assert await asyncio.to_thread(done.wait, 10)
    await asyncio.sleep(0.1)
    run = cancelled_run(delivered(dt, ingest))
    answered_as_failed(run, "tool")
    assert handler.translator.live() == (0, 0)
