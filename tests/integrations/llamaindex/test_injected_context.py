"""A tool that takes LlamaIndex's workflow ``Context`` (injected by the
agent, llama-index-core 0.14) and is called with the same arguments again
and again is a loop: the Context is left out of the arguments' hash, and the
live TOOL_LOOP detector fires."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer

from .context_tools import remember
from .fakes import Call, ScriptedLLM
from .recorded import by_run, only, tool_loop, well_formed


@pytest.fixture
def dt(ingest: IngestServer) -> Iterator[Dunetrace]:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05, detectors=True)  # the suite turns them off
    yield client
    client.shutdown(timeout=5)


async def test_identical_calls_with_an_injected_context_hash_alike_and_loop(
    dt: Dunetrace, instrumented: Any, received: Any
) -> None:
    fired: list[str] = []
    dt.on_signal(lambda signal: fired.append(signal.type))
    llm = ScriptedLLM([Call("remember", {"city": "paris"})] * 4 + ["Sunny."])
    tool = FunctionTool.from_defaults(async_fn=remember)
    assert tool.requires_context  # the agent injects its Context into every call
    agent = FunctionAgent(tools=[tool], llm=llm, streaming=False)
    assert str(await agent.run("weather in paris?")) == "Sunny."

    (events,) = by_run(received()).values()
    well_formed(events)
    calls = only(events, "tool.called")
    assert len(calls) == 4 and len({c["payload"]["args_hash"] for c in calls}) == 1
    assert {c["payload"]["args_length"] for c in calls} == {len('{"city":"paris"}')}
    assert tool_loop(events)
    assert "TOOL_LOOP" in fired
    signals = [e["payload"]["signal_name"] for e in only(events, "external.signal")]
    assert "TOOL_LOOP" in signals


async def test_different_arguments_still_hash_apart(instrumented: Any, received: Any) -> None:
    cities = ["paris", "rome", "oslo"]
    llm = ScriptedLLM([Call("remember", {"city": city}) for city in cities] + ["Done."])
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(async_fn=remember)], llm=llm, streaming=False)
    await agent.run("weather?")
    (events,) = by_run(received()).values()
    assert len({c["payload"]["args_hash"] for c in only(events, "tool.called")}) == 3
