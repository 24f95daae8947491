"""Every way of running a LangGraph agent gives the same run: invoke,
ainvoke, batch, abatch, stream, astream, astream_events."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.tools import tool

import dunetrace
from dunetrace import Dunetrace
from dunetrace.integrations.langchain import DunetraceCallbackHandler
from dunetrace.model_calls import in_framework_model_call

from .conftest import delivered, runs_of, shape, well_formed
from .fakes import agent, call, question, search

SCRIPT = [[call("search", query="a")], [call("calculator", expression="1+1")], "The answer is two."]
SHAPE = [
    ("run.started", 0, None),
    ("llm.called", 1, None),
    ("llm.responded", 1, None),
    ("tool.called", 2, "search"),
    ("tool.responded", 2, "search"),
    ("llm.called", 3, None),
    ("llm.responded", 3, None),
    ("tool.called", 4, "calculator"),
    ("tool.responded", 4, "calculator"),
    ("llm.called", 5, None),
    ("llm.responded", 5, None),
    ("run.completed", 5, "final_answer"),
]


@pytest.fixture(autouse=True)
def warnings_are_errors() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def check(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler, runs: int = 1) -> None:
    by_run = runs_of(delivered(dt, ingest, runs=runs))
    assert len(by_run) == runs
    for events in by_run.values():
        assert shape(events) == SHAPE
        well_formed(events)
    assert handler.translator.live() == (0, 0)


def test_invoke(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    agent(SCRIPT).invoke(question(), config={"callbacks": [handler]})
    check(dt, ingest, handler)


async def test_ainvoke(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    result = await agent(SCRIPT).ainvoke(question(), config={"callbacks": [handler]})
    assert result["messages"][-1].content == "The answer is two."
    check(dt, ingest, handler)


def test_batch(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    results = agent(SCRIPT).batch([question("a"), question("b"), question("c")], config={"callbacks": [handler]})
    assert len(results) == 3
    check(dt, ingest, handler, runs=3)


async def test_abatch(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    results = await agent(SCRIPT).abatch([question("a"), question("b")], config={"callbacks": [handler]})
    assert len(results) == 2
    check(dt, ingest, handler, runs=2)


@pytest.mark.parametrize("mode", ["updates", "messages", "values"])
def test_stream(mode: str, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    chunks = list(agent(SCRIPT).stream(question(), config={"callbacks": [handler]}, stream_mode=mode))
    assert chunks
    check(dt, ingest, handler)


async def test_astream(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    stream = agent(SCRIPT).astream(question(), config={"callbacks": [handler]}, stream_mode="messages")
    chunks = [c async for c in stream]
    assert chunks
    check(dt, ingest, handler)


async def test_astream_events(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    kinds = [e["event"] async for e in agent(SCRIPT).astream_events(question(), config={"callbacks": [handler]})]
    assert "on_tool_end" in kinds
    check(dt, ingest, handler)


def test_the_stream_is_unchanged(handler: DunetraceCallbackHandler) -> None:
    plain = [repr(c) for c in agent(SCRIPT).stream(question(), stream_mode="updates")]
    seen = [repr(c) for c in agent(SCRIPT).stream(question(), config={"callbacks": [handler]}, stream_mode="updates")]
    # Message ids are random per run; compare everything else.
    strip = __import__("re").compile(r"(id|tool_call_id)='[^']*'")
    assert [strip.sub("", c) for c in seen] == [strip.sub("", c) for c in plain]


def test_streamed_tokens_complete_the_llm_event(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    from .fakes import ScriptedChatModel

    model = ScriptedChatModel(script=["a streamed answer of several chunks"])
    text = "".join(str(chunk.content) for chunk in model.stream("hi", config={"callbacks": [handler]}))
    assert text == "a streamed answer of several chunks"
    events = delivered(dt, ingest)
    (responded,) = [e["payload"] for e in events if e["event_type"] == "llm.responded"]
    assert responded["output_length"] == len(text)
    assert responded["finish_reason"] == "stop"
    assert responded["completion_tokens"] == 10


def test_an_abandoned_stream_ends_its_run(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    stream = agent(SCRIPT).stream(question(), config={"callbacks": [handler]}, stream_mode="updates")
    next(stream)
    stream.close()  # the caller stops reading (as ``break`` out of a for loop does)
    events = delivered(dt, ingest)
    assert events[-1]["event_type"] == "run.completed"
    # Stopped from outside: one of dunetrace.exit_reasons, never an answer.
    assert events[-1]["payload"]["exit_reason"] == "cancelled"
    assert handler.translator.live() == (0, 0)
    assert dunetrace.get_current_run() is None


async def test_current_run_in_tools_under_ainvoke(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    seen: list[Any] = []

    @tool
    def sync_probe(query: str) -> str:
        """A sync tool: run in an executor under ainvoke."""
        seen.append(("sync", dunetrace.get_current_run()))
        return "ok"

    @tool
    async def async_probe(query: str) -> str:
        """An async tool: a task of its own."""
        seen.append(("async", dunetrace.get_current_run()))
        return "ok"

    script = [[call("sync_probe", query="a")], [call("async_probe", query="b")], "done"]
    graph = agent(script, [sync_probe, async_probe])
    await graph.ainvoke(question(), config={"callbacks": [handler]})
    assert dunetrace.get_current_run() is None

    events = delivered(dt, ingest)
    (run_id,) = {e["run_id"] for e in events}
    assert [(kind, run.run_id if run else None) for kind, run in seen] == [("sync", run_id), ("async", run_id)]


async def test_ainvoke_inside_the_users_run(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    async with dt.run("my-service") as run:
        await agent(SCRIPT).ainvoke(question(), config={"callbacks": [handler]})
    events = delivered(dt, ingest)
    assert {e["run_id"] for e in events} == {run.run_id}
    assert sum(e["event_type"] == "llm.called" for e in events) == 3
    well_formed(events)


def test_not_run_inline_still_reports(dt: Dunetrace, ingest: Any) -> None:
    """A subclass that turns run_inline off (LangChain then calls it from
    an executor under ainvoke) still gets complete runs."""
    from dunetrace.integrations.langchain import DunetraceCallbackHandler as Base

    class Threaded(Base):
        run_inline = False

    handler = Threaded(dt, agent_id="threaded")
    asyncio.run(agent(SCRIPT).ainvoke(question(), config={"callbacks": [handler]}))
    check(dt, ingest, handler)


async def test_model_calls_see_the_run_in_flight_under_ainvoke(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    """What a client wrapper (OpenAI, Anthropic) inside a LangChain model
    checks to stay silent: the current run, with an LLM call in flight."""
    from .fakes import ScriptedChatModel

    seen: list[Any] = []

    class AsyncProbing(ScriptedChatModel):
        async def _agenerate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
            run = dunetrace.get_current_run()
            seen.append((run.run_id if run else None, in_framework_model_call()))
            return self._generate(messages, *args, **kwargs)

    from langchain.agents import create_agent

    graph = create_agent(AsyncProbing(script=[[call("search", query="q")], "done"]), [search])
    await graph.ainvoke(question(), config={"callbacks": [handler]})
    (run_id,) = {e["run_id"] for e in delivered(dt, ingest)}
    assert seen == [(run_id, True), (run_id, True)]


async def test_a_sub_agent_under_ainvoke_is_a_child_run(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    inner = agent([[call("search", query="deep")], "inner answer"])
    seen: list[Any] = []

    @tool
    async def research(topic: str) -> str:
        """Delegate to the research agent."""
        result = await inner.ainvoke(question(topic))
        seen.append(dunetrace.get_current_run())  # the outer run again, after the child ended
        return result["messages"][-1].content

    await agent([[call("research", topic="paris")], "outer answer"], [research]).ainvoke(
        question(), config={"callbacks": [handler]}
    )
    runs = list(runs_of(delivered(dt, ingest, runs=2)).values())
    outer, child = sorted(runs, key=lambda r: r[0]["parent_run_id"] is not None)
    for run in runs:
        well_formed(run)
    assert {e["parent_run_id"] for e in child} == {outer[0]["run_id"]}
    assert [e["payload"]["tool_name"] for e in child if e["event_type"] == "tool.called"] == ["search"]
    assert seen[0] is not None and seen[0].run_id == outer[0]["run_id"]
    assert handler.translator.live() == (0, 0)
