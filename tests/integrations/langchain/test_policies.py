"""Policies on real LangChain / LangGraph agents driven by a scripted model:
a looping agent stopped mid-run (create_agent and a plain StateGraph, sync
and async), switch_model and inject_prompt through DunetraceMiddleware."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from pydantic import Field

from dunetrace import Dunetrace, PolicyViolation
from dunetrace import log as dunetrace_log
from dunetrace.integrations.langchain import DunetraceCallbackHandler, DunetraceMiddleware, instrument

from .fakes import ScriptedChatModel, agent, call, question, search, state_graph


@pytest.fixture(autouse=True)
def langchain_swallowed_nothing() -> Iterator[None]:
    """As conftest's: fail on any callback trouble LangChain logs, except the
    one line it logs (langchain-core 1.x, at WARNING) for the PolicyViolation
    it then lets through (``raise_error``)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("langchain_core.callbacks.manager")
    logger.addHandler(handler)
    yield
    logger.removeHandler(handler)
    messages = [r.getMessage() for r in records]
    assert all("PolicyViolation(" in m for m in messages), f"LangChain logged callback trouble: {messages}"


LOOP = [[call("search", query="same")]] * 20  # asks for the same search forever


def tool_calls(events: list[dict[str, Any]]) -> int:
    return sum(e["event_type"] == "tool.called" for e in events)


def assert_stopped(ingest: Any, dt: Dunetrace, calls: int) -> None:
    assert dt.flush(5)
    events = ingest.events
    assert tool_calls(events) == calls
    assert events[-1]["event_type"] == "run.errored"
    assert events[-1]["payload"]["error_type"] == "PolicyViolation"
    (signal,) = [e for e in events if e["payload"].get("signal_name") == "POLICY_TRIGGERED"]
    assert signal["payload"]["evidence"]["policy"] == "cap"
    assert {e["run_id"] for e in events} == {events[0]["run_id"]}


@pytest.mark.parametrize("build", [agent, state_graph], ids=["create_agent", "StateGraph"])
@pytest.mark.parametrize("strict", [True, False], ids=["strict", "as-shipped"])
def test_a_looping_agent_is_stopped_after_a_set_number_of_calls(
    build: Any, strict: bool, dt: Dunetrace, ingest: Any
) -> None:
    # As shipped (strict off) the guards swallow every other exception:
    # PolicyViolation must still get through them and LangChain.
    dunetrace_log.strict = strict
    dt.add_policy("cap", when={"tool_calls": 3}, then="stop")
    seen: list[Any] = []
    dt.on_signal(lambda signal: seen.append((signal.type, signal.run.finished)))
    with pytest.raises(PolicyViolation, match="cap"):
        build(LOOP).invoke(question(), config={"callbacks": [DunetraceCallbackHandler(dt, agent_id="looper")]})
    assert seen == [("POLICY_TRIGGERED", False)]  # in the callback while the run was still going
    assert_stopped(ingest, dt, 3)


@pytest.mark.parametrize("build", [agent, state_graph], ids=["create_agent", "StateGraph"])
def test_async_and_instrumented_agents_are_stopped_too(build: Any, dt: Dunetrace, ingest: Any) -> None:
    dt.add_policy("cap", when={"tool_calls": {">": 1}}, then="stop")
    instrument(dt, agent_id="looper")
    with pytest.raises(PolicyViolation):
        asyncio.run(build(LOOP).ainvoke(question()))
    assert_stopped(ingest, dt, 2)


def test_a_tool_node_that_handles_tool_errors_still_stops(dt: Dunetrace, ingest: Any) -> None:
    # handle_tool_errors=True turns exceptions raised in tools into messages;
    # the stop then comes at the next model call.
    dt.add_policy("cap", when={"tool_calls": 2}, then="stop")
    graph = state_graph(LOOP, handle_tool_errors=True)
    with pytest.raises(PolicyViolation):
        graph.invoke(question(), config={"callbacks": [DunetraceCallbackHandler(dt)]})
    assert_stopped(ingest, dt, 2)


class RecordingModel(ScriptedChatModel):
    """A scripted model that keeps the conversations it was called with."""

    calls: list[Any] = Field(default_factory=list)

    def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        self.calls.append(list(messages))
        return super()._generate(messages, stop, run_manager, **kwargs)


def test_switch_model_and_inject_prompt_through_the_middleware(dt: Dunetrace, ingest: Any) -> None:
    from langchain.agents import create_agent

    dt.add_policy("cheaper", when={"tool_calls": 2}, then={"switch_model": "small"})
    dt.add_policy("nudge", when={"tool_calls": 3}, then={"inject_prompt": "NUDGE-TEXT try a different query"})
    script = [[call("search", query="same")]] * 4 + ["final answer"]
    big = RecordingModel(script=script, model_name="big-model", calls=[])
    small = RecordingModel(script=script, model_name="small-model", calls=[])
    graph = create_agent(big, [search], middleware=[DunetraceMiddleware(models={"small": small})])
    result = graph.invoke(question(), config={"callbacks": [DunetraceCallbackHandler(dt, agent_id="switcher")]})
    assert result["messages"][-1].content == "final answer"
    assert len(big.calls) == 2 and len(small.calls) == 3  # every call after the switch
    injected = [m for m in small.calls[1] if isinstance(m, HumanMessage) and "NUDGE-TEXT" in m.content]
    assert len(injected) == 1 and small.calls[1][-1] is not None
    assert all("NUDGE-TEXT" not in str(m.content) for m in small.calls[0])  # added before the call after the trigger
    assert sum("NUDGE-TEXT" in str(m.content) for m in small.calls[2]) == 1  # kept in the conversation, once
    assert dt.flush(5)
    events = ingest.events
    models = [e["payload"].get("model") for e in events if e["event_type"] == "llm.called"]
    assert models == ["big-model", "big-model", "small-model", "small-model", "small-model"]
    assert events[-1]["event_type"] == "run.completed"
    assert b"NUDGE-TEXT" not in ingest.raw()


def test_an_unresolvable_model_name_keeps_the_agent_model(dt: Dunetrace, caplog: Any) -> None:
    from langchain.agents import create_agent

    dt.add_policy("cheaper", when={"tool_calls": 1}, then={"switch_model": "nowhere"})
    script = [[call("search", query="q")], "done"]
    model = RecordingModel(script=script, calls=[])
    graph = create_agent(model, [search], middleware=[DunetraceMiddleware(models={})])
    with caplog.at_level(logging.WARNING, logger="dunetrace"):
        graph.invoke(question(), config={"callbacks": [DunetraceCallbackHandler(dt)]})
    assert len(model.calls) == 2
    assert "switch_model to 'nowhere'" in caplog.text


def test_without_the_middleware_the_actions_warn_that_they_are_not_applied(dt: Dunetrace, caplog: Any) -> None:
    dt.add_policy("cheaper", when={"tool_calls": 1}, then={"switch_model": "small"})
    dt.add_policy("nudge", when={"tool_calls": 1}, then={"inject_prompt": "x"})
    with caplog.at_level(logging.WARNING, logger="dunetrace"):
        state_graph([[call("search", query="q")], [call("search", query="q")], "done"]).invoke(
            question(), config={"callbacks": [DunetraceCallbackHandler(dt)]}
        )
    assert caplog.text.count("switch_model policy triggered but LangChain") == 1
    assert caplog.text.count("inject_prompt policy triggered but nothing") == 1


@pytest.mark.parametrize(
    "handle_tool_errors", [None, True, "create_agent"], ids=["StateGraph", "handle_tool_errors", "create_agent"]
)
def test_a_stop_that_lands_on_a_tool_call(handle_tool_errors: Any, dt: Dunetrace, ingest: Any) -> None:
    # steps >= 1 triggers at the first model call; the next safe point is the
    # tool call it asks for, which never runs (a ToolNode that turns tool
    # errors into messages only delays the stop to the next model call).
    ran: list[str] = []

    @tool
    def lookup(query: str) -> str:
        """Look something up."""
        ran.append(query)
        return "found"

    dt.add_policy("cap", when={"steps": 1}, then="stop")
    script = [[call("lookup", query="q")]] * 5
    if handle_tool_errors == "create_agent":
        graph = agent(script, [lookup])
    else:
        graph = state_graph(script, [lookup], handle_tool_errors=handle_tool_errors)
    with pytest.raises(PolicyViolation):
        graph.invoke(question(), config={"callbacks": [DunetraceCallbackHandler(dt)]})
    assert ran == []
    assert_stopped(ingest, dt, 0)


def test_one_shared_handler_stops_only_the_run_that_crossed(dt: Dunetrace, ingest: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    dt.add_policy("cap", when={"tool_calls": 3}, then="stop")
    handler = DunetraceCallbackHandler(dt, agent_id="shared")
    healthy = [[call("search", query="a")], [call("search", query="b")], "answer"]

    def invoke(script: list[Any]) -> str:
        try:
            return str(agent(script).invoke(question(), config={"callbacks": [handler]})["messages"][-1].content)
        except PolicyViolation:
            return "stopped"

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(invoke, [LOOP, healthy, LOOP, healthy]))
    assert results == ["stopped", "answer", "stopped", "answer"]
    assert dt.flush(5)
    ends = [e for e in ingest.events if e["event_type"] in ("run.completed", "run.errored")]
    assert sorted(e["payload"].get("error_type", "completed") for e in ends) == [
        "PolicyViolation",
        "PolicyViolation",
        "completed",
        "completed",
    ]
