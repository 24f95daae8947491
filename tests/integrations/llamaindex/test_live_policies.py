"""A real LlamaIndex FunctionAgent looping on a tool, with the live
detectors on: TOOL_LOOP fires during the run and a policy on it stops the
agent at its next model call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool

from dunetrace import Dunetrace, PolicyViolation
from tests.ingest_server import IngestServer

from .test_policies import lookup, looping_llm


@pytest.fixture
def dt(ingest: IngestServer) -> Iterator[Dunetrace]:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05, detectors=True)  # the suite turns them off
    yield client
    client.shutdown(timeout=5)


async def test_a_tool_loop_policy_stops_the_agent_on_the_live_signal(
    instrumented: Any, received: Any, dt: Dunetrace
) -> None:
    dt.add_policy("no-loops", when={"signal": "TOOL_LOOP"}, then="stop")
    seen: list[tuple[str, bool]] = []
    dt.on_signal(lambda signal: seen.append((signal.type, signal.run.finished)))
    llm = looping_llm()
    with pytest.raises(PolicyViolation, match="no-loops"):
        await FunctionAgent(tools=[FunctionTool.from_defaults(lookup)], llm=llm).run("weather in paris?")
    assert llm._position == 3  # the fourth model call was refused
    assert seen == [("TOOL_LOOP", False), ("POLICY_TRIGGERED", False)]
    events = received()
    assert sum(e["event_type"] == "tool.called" for e in events) == 3
    signals = [e["payload"]["signal_name"] for e in events if e["event_type"] == "external.signal"]
    assert signals == ["TOOL_LOOP", "POLICY_TRIGGERED"]
    assert events[-1]["event_type"] == "run.errored" and events[-1]["payload"]["error_type"] == "PolicyViolation"
