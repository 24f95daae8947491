"""A real CrewAI crew whose researcher loops on a tool, with the live
detectors on: TOOL_LOOP fires during its run and a policy on it stops the
crew through CrewAI's call hooks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dunetrace import Dunetrace, PolicyViolation
from tests.ingest_server import IngestServer

from .crews import two_agent_crew
from .test_policies import LOOP
from .wire import by_run, delivered


@pytest.fixture
def dt(ingest: IngestServer) -> Iterator[Dunetrace]:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05, detectors=True)  # the suite turns them off
    yield client
    client.shutdown(timeout=5)


def test_a_tool_loop_policy_stops_the_crew_on_the_live_signal(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    crew_dt.add_policy("no-loops", when={"signal": "TOOL_LOOP"}, then="stop")
    seen: list[tuple[str, bool]] = []
    crew_dt.on_signal(lambda signal: seen.append((signal.type, signal.run.finished)))
    crew = two_agent_crew(LOOP)
    with pytest.raises(PolicyViolation, match="no-loops"):
        crew.kickoff(inputs={"topic": "loops"})
    assert crew.agents[0].llm.calls == 3  # the fourth model call never happened
    assert ("TOOL_LOOP", False) in seen and ("POLICY_TRIGGERED", False) in seen
    runs = by_run(delivered(ingest, crew_dt, runs=2))
    researcher: Any = next(v for k, v in runs.items() if k.startswith("crew.researcher#"))
    assert sum(e["event_type"] == "tool.called" for e in researcher) == 3
    signals = [
        e["payload"]["signal_name"]
        for e in researcher
        if e["event_type"] == "external.signal" and e["payload"].get("source") == "dunetrace"
    ]
    assert signals == ["TOOL_LOOP", "POLICY_TRIGGERED"]
    assert researcher[-1]["payload"]["error_type"] == "PolicyViolation"
