"""The whole in-process path on a real LangGraph agent: the live detectors
see the loop, TOOL_LOOP reaches the callback while the run goes on, and a
policy on that signal stops the agent at its next call."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dunetrace import Dunetrace, PolicyViolation
from dunetrace.integrations.langchain import DunetraceCallbackHandler
from tests.ingest_server import IngestServer

from .fakes import agent, call, question, state_graph
from .test_policies import langchain_swallowed_nothing  # noqa: F401  (autouse here too)


@pytest.fixture
def dt(ingest: IngestServer) -> Iterator[Dunetrace]:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05, detectors=True)  # the suite turns them off
    yield client
    client.shutdown(timeout=5)


@pytest.mark.parametrize("build", [agent, state_graph], ids=["create_agent", "StateGraph"])
def test_a_tool_loop_policy_stops_the_agent_on_the_live_signal(build: Any, dt: Dunetrace, ingest: IngestServer) -> None:
    dt.add_policy("no-loops", when={"signal": "TOOL_LOOP"}, then="stop")
    seen: list[tuple[str, bool]] = []
    dt.on_signal(lambda signal: seen.append((signal.type, signal.run.finished)))
    loop = [[call("search", query="same")]] * 20
    with pytest.raises(PolicyViolation, match="no-loops"):
        build(loop).invoke(question(), config={"callbacks": [DunetraceCallbackHandler(dt, agent_id="looper")]})
    assert seen == [("TOOL_LOOP", False), ("POLICY_TRIGGERED", False)]  # both while the run was going
    assert dt.flush(5)
    events = ingest.events
    assert sum(e["event_type"] == "tool.called" for e in events) == 3  # TOOL_LOOP's threshold, then stopped
    signals = [e["payload"]["signal_name"] for e in events if e["event_type"] == "external.signal"]
    assert signals == ["TOOL_LOOP", "POLICY_TRIGGERED"]
    assert events[-1]["event_type"] == "run.errored" and events[-1]["payload"]["error_type"] == "PolicyViolation"
