"""Arguments the framework injects into a tool (LangGraph state and store,
langchain 1.x ``ToolRuntime``, the tool call id, the ``RunnableConfig``)
differ on every call; the model's own arguments do not. Identical calls
must hash alike, so a looping agent is seen as a loop: the live TOOL_LOOP
detector fires."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from langchain.agents import create_agent
from langchain.tools import ToolRuntime
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import InjectedToolCallId, tool
from langgraph.prebuilt import InjectedState, InjectedStore
from langgraph.store.base import BaseStore
from langgraph.store.memory import InMemoryStore

from dunetrace import Dunetrace
from dunetrace.integrations.langchain import DunetraceCallbackHandler
from dunetrace.live import Signal

from .conftest import delivered, tool_loop, well_formed
from .fakes import ScriptedChatModel, call, question, state_graph

seen: list[Any] = []


@tool
def with_state(order_id: str, state: Annotated[dict[str, Any], InjectedState]) -> str:
    """Check an order's status."""
    seen.append(len(state["messages"]))
    return "pending"


@tool
def with_store(order_id: str, store: Annotated[BaseStore, InjectedStore()]) -> str:
    """Check an order's status."""
    seen.append(store)
    return "pending"


@tool
def with_runtime(order_id: str, runtime: ToolRuntime) -> str:
    """Check an order's status."""
    seen.append(runtime.tool_call_id)
    return "pending"


@tool
def with_call_id_and_config(
    order_id: str, tool_call_id: Annotated[str, InjectedToolCallId], config: RunnableConfig
) -> str:
    """Check an order's status."""
    seen.append((tool_call_id, config.get("run_id")))
    return "pending"


TOOLS = [with_state, with_store, with_runtime, with_call_id_and_config]


@pytest.fixture
def live(ingest: Any) -> Iterator[tuple[Dunetrace, list[Signal]]]:
    signals: list[Signal] = []
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05, detectors=True, on_signal=signals.append)
    yield client, signals
    client.shutdown(timeout=5)


@pytest.mark.parametrize("looping_tool", TOOLS, ids=[t.name for t in TOOLS])
def test_a_loop_through_injected_arguments_is_a_loop(
    looping_tool: Any, live: tuple[Dunetrace, list[Signal]], ingest: Any
) -> None:
    dt, signals = live
    seen.clear()
    script = [[call(looping_tool.name, order_id="A-17")]] * 4 + ["still pending"]
    agent = create_agent(ScriptedChatModel(script=script), [looping_tool], store=InMemoryStore())
    agent.invoke(question("Where is order A-17?"), config={"callbacks": [DunetraceCallbackHandler(dt, "orders")]})
    assert len(seen) == 4
    # What was injected did differ from call to call (or was an object).
    assert len({repr(value) for value in seen}) > 1 or not isinstance(seen[0], (str, int, tuple))

    events = delivered(dt, ingest)
    well_formed([e for e in events if e["event_type"] != "external.signal"])
    called = [e["payload"] for e in events if e["event_type"] == "tool.called"]
    assert len(called) == 4
    assert {p["args_hash"] for p in called} == {dt.hasher.value({"order_id": "A-17"})}
    assert tool_loop(events)
    assert [s.type for s in signals].count("TOOL_LOOP") == 1
    fired = [e for e in events if e["event_type"] == "external.signal" and e["payload"]["signal_name"] == "TOOL_LOOP"]
    assert len(fired) == 1


def test_injected_state_in_a_hand_built_graph(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    seen.clear()
    script = [[call("with_state", order_id="A-17")]] * 3 + ["still pending"]
    state_graph(script, [with_state]).invoke(question(), config={"callbacks": [handler]})
    assert seen == [2, 4, 6]  # the state the tool got grew each time
    called = [e["payload"] for e in delivered(dt, ingest) if e["event_type"] == "tool.called"]
    assert len({p["args_hash"] for p in called}) == 1
    assert {p["args_length"] for p in called} == {len('{"order_id":"A-17"}')}
