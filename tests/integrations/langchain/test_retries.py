"""Retries and fallbacks, on a model and on a tool, at the top level and
inside a graph or agent, and langchain 1.x's retry and fallback
middleware: always one run, each attempt a call of its own (a failed model
attempt is ``llm.responded`` with ``finish_reason`` ``error``)."""

from __future__ import annotations

import asyncio
from typing import Any

import openai
import pytest
from langchain.agents import create_agent
from langchain.agents.middleware import ModelFallbackMiddleware, ModelRetryMiddleware, ToolRetryMiddleware
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import RetryPolicy

from dunetrace import Dunetrace
from dunetrace.integrations.langchain import DunetraceCallbackHandler, instrument, uninstrument

from .conftest import delivered, runs_of, well_formed
from .failing import Unreliable, flaky_model, flaky_tool
from .fakes import ScriptedChatModel, call, question, search

RETRY = {"stop_after_attempt": 3, "wait_exponential_jitter": False}


def one_run(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    assert len({e["run_id"] for e in events}) == 1, "the attempts were split into several runs"
    assert {e["parent_run_id"] for e in events} == {None}
    well_formed(events)
    return events


def model_attempts(events: list[dict[str, Any]]) -> list[tuple[str | None, str | None]]:
    """(model, finish_reason) of each model call, in order."""
    called = {e["step_index"]: e["payload"].get("model") for e in events if e["event_type"] == "llm.called"}
    return [
        (called[e["step_index"]], e["payload"].get("finish_reason"))
        for e in events
        if e["event_type"] == "llm.responded"
    ]


def tool_attempts(events: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    return [(e["payload"]["tool_name"], e["payload"]["success"]) for e in events if e["event_type"] == "tool.responded"]


def invoke(runnable: Any, value: Any, handler: DunetraceCallbackHandler, asynchronous: bool) -> Any:
    config = {"callbacks": [handler]}
    if asynchronous:
        return asyncio.run(runnable.ainvoke(value, config=config))
    return runnable.invoke(value, config=config)


@pytest.mark.parametrize("asynchronous", [False, True], ids=["invoke", "ainvoke"])
def test_model_with_retry_at_the_top(
    asynchronous: bool, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    model = flaky_model(2, ["fine"])
    assert invoke(model.with_retry(**RETRY), "hi", handler, asynchronous).content == "fine"
    events = one_run(delivered(dt, ingest))
    assert model_attempts(events) == [
        ("scripted-model", "error"),
        ("scripted-model", "error"),
        ("scripted-model", "stop"),
    ]
    failed = [e["payload"] for e in events if e["event_type"] == "llm.responded"][:2]
    assert {p["error_type"] for p in failed} == {"RateLimitError"}
    assert events[-1]["payload"]["exit_reason"] == "final_answer"


@pytest.mark.parametrize("asynchronous", [False, True], ids=["invoke", "ainvoke"])
def test_model_with_fallbacks_at_the_top(
    asynchronous: bool, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    primary = flaky_model(5, ["never"], model_name="primary")
    backup = ScriptedChatModel(script=["from the backup"], model_name="backup")
    result = invoke(primary.with_fallbacks([backup]), "hi", handler, asynchronous)
    assert result.content == "from the backup"
    events = one_run(delivered(dt, ingest))
    assert model_attempts(events) == [("primary", "error"), ("backup", "stop")]
    assert events[-1]["event_type"] == "run.completed"
    assert events[-1]["payload"]["exit_reason"] == "final_answer"
    assert handler.translator.live() == (0, 0)


def test_every_fallback_failing_is_one_errored_run(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    first = flaky_model(5, ["never"], model_name="first")
    second = flaky_model(5, ["never"], model_name="second", error="server")
    with pytest.raises(Exception) as raised:
        first.with_fallbacks([second.with_retry(stop_after_attempt=2, wait_exponential_jitter=False)]).invoke(
            "hi", config={"callbacks": [handler]}
        )
    assert type(raised.value).__name__ == "RateLimitError"  # LangChain re-raises the first error
    events = one_run(delivered(dt, ingest))
    assert model_attempts(events) == [("first", "error"), ("second", "error"), ("second", "error")]
    assert events[-1]["event_type"] == "run.errored"
    assert events[-1]["payload"]["error_type"] == "RateLimitError"


@pytest.mark.parametrize("wrap", ["retry", "fallbacks"])
def test_tool_with_retry_or_fallbacks_at_the_top(
    wrap: str, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    if wrap == "retry":
        runnable = flaky_tool(1).with_retry(retry_if_exception_type=(Unreliable,), **RETRY)
        expected = [("fetch", False), ("fetch", True)]
    else:
        runnable = flaky_tool(1).with_fallbacks([flaky_tool(0, name="mirror")])
        expected = [("fetch", False), ("mirror", True)]
    assert runnable.invoke({"url": "https://example.org"}, config={"callbacks": [handler]}) == "page text"
    events = one_run(delivered(dt, ingest))
    assert tool_attempts(events) == expected
    failed = next(e["payload"] for e in events if e["event_type"] == "tool.responded")
    assert failed["error_type"] == "Unreliable"


@pytest.mark.parametrize("wrap", ["retry", "fallbacks"])
def test_model_retry_or_fallbacks_inside_a_graph(
    wrap: str, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    primary = flaky_model(1, [[call("search", query="paris")], "sunny"], model_name="primary").bind_tools([search])
    backup = ScriptedChatModel(script=[[call("search", query="paris")], "sunny"], model_name="backup")
    model = primary.with_retry(**RETRY) if wrap == "retry" else primary.with_fallbacks([backup.bind_tools([search])])

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode([search]))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "model")
    graph.compile().invoke(question(), config={"callbacks": [handler]})

    events = one_run(delivered(dt, ingest))
    # The primary fails once: the retry's second attempt, or the backup, answers;
    # the next turn's primary succeeds.
    second = "primary" if wrap == "retry" else "backup"
    assert model_attempts(events) == [("primary", "error"), (second, "tool_calls"), ("primary", "stop")]
    assert tool_attempts(events) == [("search", True)]
    assert events[-1]["payload"]["exit_reason"] == "final_answer"


def test_agent_retry_and_fallback_middleware(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    model = flaky_model(1, [[call("fetch", url="https://example.org")], "done"], model_name="primary")
    agent = create_agent(
        model,
        [flaky_tool(1)],
        system_prompt="You fetch pages.",
        middleware=[
            ModelRetryMiddleware(max_retries=2, initial_delay=0, jitter=False),
            ToolRetryMiddleware(max_retries=2, initial_delay=0, jitter=False),
        ],
    )
    assert agent.invoke(question(), config={"callbacks": [handler]})["messages"][-1].content == "done"
    events = one_run(delivered(dt, ingest))
    assert model_attempts(events) == [("primary", "error"), ("primary", "tool_calls"), ("primary", "stop")]
    assert tool_attempts(events) == [("fetch", False), ("fetch", True)]
    assert events[0]["payload"]["tools"] == ["fetch"]
    assert events[-1]["payload"]["exit_reason"] == "final_answer"


def test_agent_model_fallback_middleware(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    backup = ScriptedChatModel(script=["from the backup"], model_name="backup")
    agent = create_agent(
        flaky_model(9, ["never"], model_name="primary"),
        [search],
        middleware=[ModelFallbackMiddleware(backup)],
    )
    assert agent.invoke(question(), config={"callbacks": [handler]})["messages"][-1].content == "from the backup"
    events = one_run(delivered(dt, ingest))
    assert model_attempts(events) == [("primary", "error"), ("backup", "stop")]
    assert events[-1]["payload"]["exit_reason"] == "final_answer"


def test_fallbacks_under_instrument(dt: Dunetrace, ingest: Any) -> None:
    instrument(dt, agent_id="instrumented")
    try:
        primary = flaky_model(5, ["never"], model_name="primary")
        backup = ScriptedChatModel(script=["from the backup"], model_name="backup")
        assert primary.with_fallbacks([backup]).invoke("hi").content == "from the backup"
    finally:
        uninstrument()
    events = one_run(delivered(dt, ingest))
    assert model_attempts(events) == [("primary", "error"), ("backup", "stop")]
    assert {e["agent_id"] for e in events} == {"instrumented"}


@pytest.mark.parametrize("asynchronous", [False, True], ids=["batch", "abatch"])
def test_a_batch_of_fallbacks_is_a_run_per_input(
    asynchronous: bool, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    # The sync batch opens every input's root in the caller's thread before
    # any of them runs: each must still be a run of its own, parented to none.
    primary = flaky_model(9, ["never"], model_name="primary")
    runnable = primary.with_fallbacks([ScriptedChatModel(script=["ok"], model_name="backup")])
    inputs = ["one", "two", "three"]
    config: Any = {"callbacks": [handler]}
    results = asyncio.run(runnable.abatch(inputs, config=config)) if asynchronous else runnable.batch(inputs, config)
    assert [r.content for r in results] == ["ok"] * 3
    runs = list(runs_of(delivered(dt, ingest, runs=3)).values())
    assert len(runs) == 3
    for run in runs:
        assert {e["parent_run_id"] for e in run} == {None}
        well_formed(run)
        assert model_attempts(run) == [("primary", "error"), ("backup", "stop")]
    assert sorted(run[0]["payload"]["input_hash"] for run in runs) == sorted(dt.hasher.value(i) for i in inputs)
    assert handler.translator.live() == (0, 0)


def test_a_graph_node_retry_policy(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    model = flaky_model(2, ["fine"])

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    policy = RetryPolicy(max_attempts=3, initial_interval=0.01, jitter=False, retry_on=openai.RateLimitError)
    graph.add_node("model", call_model, retry_policy=policy)
    graph.add_edge(START, "model")
    graph.add_edge("model", END)
    graph.compile().invoke(question(), config={"callbacks": [handler]})
    events = one_run(delivered(dt, ingest))
    assert model_attempts(events) == [
        ("scripted-model", "error"),
        ("scripted-model", "error"),
        ("scripted-model", "stop"),
    ]
    assert events[-1]["payload"]["exit_reason"] == "final_answer"


class BrokenStream(ScriptedChatModel):
    def _stream(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("stream broke")


@pytest.mark.parametrize("asynchronous", [False, True], ids=["stream", "astream"])
def test_streamed_fallbacks(asynchronous: bool, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    primary = BrokenStream(script=["never"], model_name="primary")
    runnable = primary.with_fallbacks([ScriptedChatModel(script=["from the backup"], model_name="backup")])
    config: Any = {"callbacks": [handler]}

    async def astream() -> list[Any]:
        return [chunk async for chunk in runnable.astream("hi", config=config)]

    chunks = asyncio.run(astream()) if asynchronous else list(runnable.stream("hi", config=config))
    assert "".join(c.content for c in chunks) == "from the backup"
    events = one_run(delivered(dt, ingest))
    assert model_attempts(events) == [("primary", "error"), ("backup", "stop")]
    failed = next(e["payload"] for e in events if e["event_type"] == "llm.responded")
    assert failed["error_type"] == "ConnectionError"
