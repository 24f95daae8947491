"""Order on the wire, on real LangChain / LangGraph: each run's
``run.started`` comes before every other event of it and its terminal event
after them, whatever the shape of the invoke (graph, agent, a
``RunnableLambda`` or plain function at the root, nested runnables, a tool
that runs an agent, streams read to the end or closed early), how it is
invoked, and how many run at once. Inside a function at the root,
``get_current_run()`` gives the run, sync and async."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import RunnableLambda, chain
from langchain_core.tools import StructuredTool, tool

import dunetrace
from dunetrace import Dunetrace
from dunetrace.integrations.langchain import DunetraceCallbackHandler

from .conftest import runs_of, well_formed
from .fakes import ScriptedChatModel, agent, call, question, state_graph

SCRIPT = [[call("search", query="paris")], "It is sunny."]


def _seen_by_user(value: Any) -> Any:
    """What a user's function at the root does: reads the current run, and
    reports something on it."""
    run = dunetrace.get_current_run()
    assert run is not None, "get_current_run() is None inside a runnable at the root"
    run.external_signal("USER_STEP", source="test")
    return value


async def _seen_by_user_async(value: Any) -> Any:
    await asyncio.sleep(0)
    return _seen_by_user(value)


@tool
def ask_expert(query: str) -> str:
    """Ask an expert agent, which searches itself."""
    inner = agent([[call("search", query=query)], "the expert says yes"])
    return inner.invoke(question(query))["messages"][-1].content


async def _ask_expert_async(query: str) -> str:
    inner = agent([[call("search", query=query)], "the expert says yes"])
    return str((await inner.ainvoke(question(query)))["messages"][-1].content)


# Async under ainvoke, the sync function under invoke (a coroutine-only tool
# cannot be invoked synchronously).
ask_expert_async = StructuredTool.from_function(
    func=ask_expert.func, coroutine=_ask_expert_async, name="ask_expert_async", description="Ask an expert agent."
)


@chain
def plain_function(value: Any) -> Any:
    """A plain function at the root, through LangChain's ``@chain``."""
    return _seen_by_user(value)


def _functional_graph() -> Any:
    """LangGraph's functional API: an ``@entrypoint`` running a ``@task``."""
    from langgraph.func import entrypoint, task

    @task
    def step(value: Any) -> Any:
        return _seen_by_user(value)

    @entrypoint()
    def flow(value: Any) -> Any:
        _seen_by_user(value)
        return step(value).result()

    return flow


def _shapes() -> dict[str, Callable[[], tuple[Any, Any]]]:
    return {
        "agent": lambda: (agent(SCRIPT), question()),
        "graph": lambda: (state_graph(SCRIPT), question()),
        "lambda": lambda: (RunnableLambda(_seen_by_user), "x"),
        "async lambda": lambda: (RunnableLambda(_seen_by_user, afunc=_seen_by_user_async), "x"),
        "nested": lambda: (
            RunnableLambda(_seen_by_user, afunc=_seen_by_user_async)
            | ScriptedChatModel(script=["a reply"])
            | StrOutputParser()
            | RunnableLambda(_seen_by_user, afunc=_seen_by_user_async),
            "hello",
        ),
        "@chain function": lambda: (plain_function, "x"),
        "@entrypoint": lambda: (_functional_graph(), "x"),
        "model": lambda: (ScriptedChatModel(script=["a streamed reply of some length"]), "hi"),
        "tool in tool": lambda: (
            agent([[call("ask_expert", query="q")], "done"], [ask_expert, ask_expert_async]),
            question(),
        ),
        "async tool in tool": lambda: (
            agent([[call("ask_expert_async", query="q")], "done"], [ask_expert, ask_expert_async]),
            question(),
        ),
    }


SHAPES = _shapes()
MODES = ["invoke", "ainvoke", "stream", "astream", "stream closed", "astream closed"]


async def _drive(runnable: Any, inputs: Any, mode: str, handler: DunetraceCallbackHandler) -> None:
    config: Any = {"callbacks": [handler]}
    if mode == "invoke":
        await asyncio.to_thread(runnable.invoke, inputs, config)
    elif mode == "ainvoke":
        await runnable.ainvoke(inputs, config)
    elif mode == "stream":
        await asyncio.to_thread(lambda: list(runnable.stream(inputs, config)))
    elif mode == "astream":
        _ = [chunk async for chunk in runnable.astream(inputs, config)]
    elif mode == "stream closed":

        def read_one() -> None:
            stream = runnable.stream(inputs, config)
            next(stream, None)
            stream.close()

        await asyncio.to_thread(read_one)
    else:
        stream = runnable.astream(inputs, config)
        await stream.__anext__()
        await stream.aclose()
        del stream
        # aclose() closes the outer generator only; LangChain's inner ones
        # (where its callbacks run) are closed when collected, by the loop's
        # async generator finalizer. A real loop lives on until that
        # happens; this one ends with the test, so they are collected and
        # closed while it still runs.
        gc.collect()
        for _ in range(3):
            await asyncio.sleep(0)


def _check(events: list[dict[str, Any]], expected_runs: int) -> None:
    runs = runs_of(events)
    assert len(runs) >= expected_runs
    for run in runs.values():
        well_formed(run)  # started first, one terminal last, every call answered
    children = [r for r in runs.values() if r[0]["parent_run_id"] is not None]
    for child in children:
        assert child[0]["parent_run_id"] in runs


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(invokes=st.lists(st.tuples(st.sampled_from(sorted(SHAPES)), st.sampled_from(MODES)), min_size=1, max_size=3))
def test_started_first_and_terminal_last_in_every_shape(
    invokes: list[tuple[str, str]], dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    before = len(ingest.events)

    async def together() -> None:
        await asyncio.gather(*(_drive(*SHAPES[shape](), mode, handler) for shape, mode in invokes))

    asyncio.run(together())
    dt.flush()
    assert ingest.wait_for(
        lambda evs: sum(e["event_type"] in ("run.completed", "run.errored") for e in evs[before:]) >= len(invokes)
    )
    assert handler.translator.live() == (0, 0)
    _check(ingest.events[before:], len(invokes))
    assert dunetrace.get_current_run() is None


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
@pytest.mark.parametrize("shape", ["lambda", "async lambda"])
def test_current_run_at_the_root_is_the_run_reported(
    shape: str, mode: str, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    seen: list[str] = []

    def user(value: Any) -> Any:
        run = dunetrace.get_current_run()
        assert run is not None
        seen.append(run.run_id)
        run.tool_called("my_tool", {"q": value})
        run.tool_responded("my_tool", True, output="ok")
        return value

    async def user_async(value: Any) -> Any:
        return user(value)

    runnable = RunnableLambda(user) if shape == "lambda" else RunnableLambda(user, afunc=user_async)
    if mode == "invoke":
        runnable.invoke("q", {"callbacks": [handler]})
    else:
        asyncio.run(runnable.ainvoke("q", {"callbacks": [handler]}))
    dt.flush()
    assert ingest.wait_for(lambda evs: any(e["event_type"] == "run.completed" for e in evs))
    (run,) = runs_of(ingest.events).values()
    well_formed(run)
    assert [e["event_type"] for e in run] == ["run.started", "tool.called", "tool.responded", "run.completed"]
    assert seen == [run[0]["run_id"]]
    assert dunetrace.get_current_run() is None


async def test_two_streams_read_in_turn_in_one_task_are_two_runs(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    first = RunnableLambda(_seen_by_user, afunc=_seen_by_user_async).astream("a", {"callbacks": [handler]})
    second = RunnableLambda(_seen_by_user, afunc=_seen_by_user_async).astream("b", {"callbacks": [handler]})
    assert [c async for c in first] == ["a"]
    assert [c async for c in second] == ["b"]
    lone = agent(SCRIPT).astream(question(), {"callbacks": [handler]})
    other = agent(SCRIPT).astream(question(), {"callbacks": [handler]})
    await lone.__anext__()
    await other.__anext__()
    _ = [c async for c in lone] + [c async for c in other]
    dt.flush()
    assert ingest.wait_for(lambda evs: sum(e["event_type"] == "run.completed" for e in evs) >= 4)
    runs = runs_of(ingest.events)
    assert len(runs) == 4
    assert all(r[0]["parent_run_id"] is None for r in runs.values())
    _check(ingest.events, 4)
