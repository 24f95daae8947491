"""Human in the loop on real LangGraph: ``interrupt()`` in a node, in a tool
and through ``HumanInTheLoopMiddleware``, then ``Command(resume=...)`` on the
same thread. The paused run ends ``interrupted`` with its calls answered;
the resuming run names it in ``resumed_from``, has its configuration, and
hashes the resume value as its input."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain.agents import create_agent
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command, interrupt

from dunetrace import Dunetrace
from dunetrace.exit_reasons import FINAL_ANSWER, INTERRUPTED
from dunetrace.integrations.langchain import DunetraceCallbackHandler
from dunetrace.integrations.langchain.resume import Resumes, thread_id_of

from .conftest import delivered, runs_of, well_formed
from .fakes import ScriptedChatModel, call, question, search


@tool
def approve(amount: str) -> str:
    """Ask a human to approve a refund."""
    return "approved" if interrupt({"amount": amount}) == "yes" else "denied"


def tool_agent() -> Any:
    model = ScriptedChatModel(script=[[call("approve", amount="30")], "refunded"], model_name="m-hitl")
    return create_agent(model, [approve, search], system_prompt="refunds", checkpointer=InMemorySaver())


def middleware_agent() -> Any:
    from langchain.agents.middleware import HumanInTheLoopMiddleware

    return create_agent(
        ScriptedChatModel(script=[[call("search", query="q")], "found"], model_name="m-mw"),
        [search],
        system_prompt="search carefully",
        middleware=[HumanInTheLoopMiddleware(interrupt_on={"search": True})],
        checkpointer=InMemorySaver(),
    )


def node_graph() -> Any:
    def ask(state: MessagesState) -> dict[str, Any]:
        answer = interrupt("go ahead?")
        return {"messages": [("ai", f"told {answer}")]}

    graph = StateGraph(MessagesState)
    graph.add_node("ask", ask)
    graph.add_edge(START, "ask")
    graph.add_edge("ask", END)
    return graph.compile(checkpointer=InMemorySaver())


def config(handler: DunetraceCallbackHandler, thread: str) -> Any:
    return {"callbacks": [handler], "configurable": {"thread_id": thread}}


def paused_then_resumed(events: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    runs = list(runs_of(events).values())
    assert len(runs) == 2, [r[0]["event_type"] for r in runs]
    for run in runs:
        well_formed(run)
    first, second = runs
    assert first[-1]["event_type"] == "run.completed"
    assert first[-1]["payload"]["exit_reason"] == INTERRUPTED
    assert second[0]["payload"]["resumed_from"] == first[0]["run_id"]
    assert "resumed_from" not in first[0]["payload"]
    assert second[-1]["event_type"] == "run.completed"
    return first, second


def same_configuration(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> None:
    assert second[0]["agent_version"] == first[0]["agent_version"]
    assert all(e["agent_version"] == first[0]["agent_version"] for e in second)
    for key in ("model", "tools"):
        assert second[0]["payload"].get(key) == first[0]["payload"].get(key)


CASES = {
    "tool": (tool_agent, "yes", "refunded"),
    "middleware": (middleware_agent, {"decisions": [{"type": "approve"}]}, "found"),
    "node": (node_graph, "sure", "told sure"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_interrupt_then_resume(case: str, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    build, resume, answer = CASES[case]
    graph = build()
    first = graph.invoke(question(), config=config(handler, "t1"))
    assert "__interrupt__" in first
    second = graph.invoke(Command(resume=resume), config=config(handler, "t1"))
    assert second["messages"][-1].content == answer
    paused, resumed = paused_then_resumed(delivered(dt, ingest, runs=2))
    assert resumed[0]["payload"]["input_hash"] == dt.hasher.value(resume)
    assert paused[0]["payload"]["input_hash"] == dt.hasher.value("What is the weather in Paris?")
    same_configuration(paused, resumed)
    if case != "node":
        assert paused[0]["payload"]["model"] in ("m-hitl", "m-mw")
        assert resumed[-1]["payload"]["exit_reason"] == FINAL_ANSWER
    assert handler.translator.live() == (0, 0)


@pytest.mark.parametrize("case", list(CASES))
def test_interrupt_then_resume_streamed(
    case: str, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    build, resume, _ = CASES[case]
    graph = build()
    chunks = list(graph.stream(question(), config=config(handler, "s1"), stream_mode="updates"))
    assert any("__interrupt__" in chunk for chunk in chunks)
    list(graph.stream(Command(resume=resume), config=config(handler, "s1"), stream_mode="updates"))
    paused, resumed = paused_then_resumed(delivered(dt, ingest, runs=2))
    assert resumed[0]["payload"]["input_hash"] == dt.hasher.value(resume)
    same_configuration(paused, resumed)


@pytest.mark.parametrize("case", list(CASES))
async def test_interrupt_then_resume_async(
    case: str, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    build, resume, answer = CASES[case]
    graph = build()
    first = await graph.ainvoke(question(), config=config(handler, "a1"))
    assert "__interrupt__" in first
    second = await graph.ainvoke(Command(resume=resume), config=config(handler, "a1"))
    assert second["messages"][-1].content == answer
    paused, resumed = paused_then_resumed(delivered(dt, ingest, runs=2))
    assert resumed[0]["payload"]["input_hash"] == dt.hasher.value(resume)
    same_configuration(paused, resumed)


def test_the_tool_the_interrupt_cut_is_answered(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    graph = tool_agent()
    graph.invoke(question(), config=config(handler, "t"))
    graph.invoke(Command(resume="yes"), config=config(handler, "t"))
    paused, resumed = paused_then_resumed(delivered(dt, ingest, runs=2))
    cut = [e for e in paused if e["event_type"] == "tool.responded"]
    assert [(e["payload"]["tool_name"], e["payload"]["success"]) for e in cut] == [("approve", True)]
    # The resuming run calls the tool again (LangGraph re-runs the node), then answers.
    assert [e["payload"]["tool_name"] for e in resumed if e["event_type"] == "tool.called"] == ["approve"]


def test_interrupted_again_links_each_resume_to_the_last_pause(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    def twice(state: MessagesState) -> dict[str, Any]:
        first = interrupt("first?")
        second = interrupt("second?")
        return {"messages": [("ai", f"{first} {second}")]}

    graph = StateGraph(MessagesState)
    graph.add_node("twice", twice)
    graph.add_edge(START, "twice")
    graph.add_edge("twice", END)
    app = graph.compile(checkpointer=InMemorySaver())
    app.invoke(question(), config=config(handler, "x"))
    app.invoke(Command(resume="a"), config=config(handler, "x"))
    result = app.invoke(Command(resume="b"), config=config(handler, "x"))
    assert result["messages"][-1].content == "a b"
    runs = list(runs_of(delivered(dt, ingest, runs=3)).values())
    assert [r[-1]["payload"]["exit_reason"] for r in runs] == [INTERRUPTED, INTERRUPTED, "completed"]
    assert runs[1][0]["payload"]["resumed_from"] == runs[0][0]["run_id"]
    assert runs[2][0]["payload"]["resumed_from"] == runs[1][0]["run_id"]
    assert runs[2][0]["payload"]["input_hash"] == dt.hasher.value("b")


def test_a_new_handler_per_invoke_still_links_the_resume(dt: Dunetrace, ingest: Any) -> None:
    graph = tool_agent()
    graph.invoke(question(), config=config(DunetraceCallbackHandler(dt), "fresh"))
    graph.invoke(Command(resume="no"), config=config(DunetraceCallbackHandler(dt), "fresh"))
    paused, resumed = paused_then_resumed(delivered(dt, ingest, runs=2))
    same_configuration(paused, resumed)


async def test_threads_interrupted_at_once_stay_apart(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    graph = tool_agent()
    threads = [f"thread-{i}" for i in range(6)]
    await asyncio.gather(*(graph.ainvoke(question(t), config=config(handler, t)) for t in threads))
    # Resumed in the other order, all at once.
    await asyncio.gather(*(graph.ainvoke(Command(resume=f"ok {t}"), config=config(handler, t)) for t in threads[::-1]))
    check_threads_apart(dt, ingest, threads)
    assert handler.translator.live() == (0, 0)


def test_threads_interrupted_at_once_stay_apart_sync(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    graph = tool_agent()
    threads = [f"sync-{i}" for i in range(6)]
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(lambda t: graph.invoke(question(t), config=config(handler, t)), threads))
        list(pool.map(lambda t: graph.invoke(Command(resume=f"ok {t}"), config=config(handler, t)), threads[::-1]))
    check_threads_apart(dt, ingest, threads)


def check_threads_apart(dt: Dunetrace, ingest: Any, threads: list[str]) -> None:
    runs = list(runs_of(delivered(dt, ingest, runs=2 * len(threads))).values())
    assert len(runs) == 2 * len(threads)
    paused = {r[0]["payload"]["input_hash"]: r[0]["run_id"] for r in runs if "resumed_from" not in r[0]["payload"]}
    resumed = {
        r[0]["payload"]["input_hash"]: r[0]["payload"]["resumed_from"]
        for r in runs
        if "resumed_from" in r[0]["payload"]
    }
    for thread in threads:
        asked, told = dt.hasher.value(thread), dt.hasher.value(f"ok {thread}")
        assert resumed[told] == paused[asked], thread
    for run in runs:
        well_formed(run)


def test_a_resume_without_a_pause_seen_is_a_plain_run(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    graph = tool_agent()
    graph.invoke(question(), config={"configurable": {"thread_id": "unseen"}})  # not reported
    graph.invoke(Command(resume="yes"), config=config(handler, "unseen"))
    (run,) = runs_of(delivered(dt, ingest)).values()
    well_formed(run)
    assert "resumed_from" not in run[0]["payload"]
    assert run[0]["payload"]["input_hash"] == dt.hasher.value("yes")


# -- the table, on any thread ids -----------------------------------------------


class _Run:
    def __init__(self, n: int) -> None:
        self.run_id, self.agent_version, self.model, self.tools = f"run-{n}", f"v{n}", None, ["t"]


ops = st.lists(st.tuples(st.sampled_from(["pause", "done"]), st.text(max_size=3)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(ops=ops, limit=st.integers(1, 5))
def test_the_table_keeps_the_last_pause_of_each_thread_within_its_bound(ops: list[tuple[str, str]], limit: int) -> None:
    table = Resumes(limit)
    expected: dict[str, str] = {}  # thread -> last paused run, oldest first
    for n, (op, thread) in enumerate(ops):
        if op == "pause":
            table.interrupted("agent", thread, _Run(n), known=True)  # type: ignore[arg-type]
            expected.pop(thread, None)
            expected[thread] = f"run-{n}"
            while len(expected) > limit:
                del expected[next(iter(expected))]
        else:
            table.completed("agent", thread)
            expected.pop(thread, None)
        assert len(table) <= limit
    for n, (_, thread) in enumerate(ops):
        found = table.paused("agent", thread)
        assert (found.run_id if found else None) == expected.get(thread), n
        assert table.paused("another agent", thread) is None


@given(st.one_of(st.none(), st.text(), st.integers(), st.booleans(), st.lists(st.text()), st.floats()))
def test_thread_ids_are_read_from_metadata_as_strings(value: Any) -> None:
    found = thread_id_of({"thread_id": value})
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        assert found == str(value)
    else:
        assert found is None
    assert thread_id_of(value) is None or isinstance(value, dict)
