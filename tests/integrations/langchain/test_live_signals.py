"""Live detection on a real LangGraph ``create_agent`` agent whose scripted
model loops on a tool: the callback gets TOOL_LOOP while the agent is still
running, and a real collector shows it once, marked live."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
from langchain_core.tools import tool

from dunetrace import Dunetrace
from dunetrace.collector.server import BackgroundServer
from dunetrace.collector.settings import Settings
from dunetrace.integrations.langchain import DunetraceCallbackHandler
from dunetrace.live import Signal

from .fakes import agent, call, question

#: What the agent's tool saw when each signal arrived.
tool_calls_seen: list[int] = []


@tool
def status(service: str) -> str:
    """Check a service's status."""
    tool_calls_seen.append(1)
    return "unknown, try again"


def test_create_agent_loop_signals_mid_run_and_the_collector_shows_it_once_live(tmp_path: Path) -> None:
    collector = BackgroundServer(Settings(db_path=str(tmp_path / "c.db"))).start()
    try:
        received: list[tuple[Signal, int, bool]] = []
        dt = Dunetrace(
            endpoint=collector.url,
            flush_interval=0.05,
            detectors=True,
            on_signal=lambda s: received.append((s, len(tool_calls_seen), s.run.finished)),
        )
        handler = DunetraceCallbackHandler(dt, agent_id="looping-agent")
        tool_calls_seen.clear()
        script = [[call("status", service="db")]] * 6 + ["giving up"]
        result = agent(script, [status]).invoke(question(), config={"callbacks": [handler]})
        assert result["messages"][-1].content == "giving up"
        loops = [(s, calls, finished) for s, calls, finished in received if s.type == "TOOL_LOOP"]
        assert len(loops) == 1
        signal, calls_before, finished = loops[0]
        # Fired at the third call, before that call ran; six calls in all.
        assert (calls_before, finished, len(tool_calls_seen)) == (2, False, 6)
        assert signal.evidence["tool"] == "status" and signal.evidence["calls"] == 3
        run_id = signal.run_id
        assert dt.flush(5)
        dt.shutdown(5)
        with httpx.Client(timeout=10) as http:
            deadline = time.monotonic() + 20
            while True:
                detail: Any = http.get(f"{collector.url}/api/runs/{run_id}").json()
                if detail.get("run", {}).get("status") == "judged":
                    break
                assert time.monotonic() < deadline, detail
                time.sleep(0.05)
            shown = [s for s in detail["signals"] if s["detector"] == "TOOL_LOOP"]
            assert len(shown) == 1
            assert shown[0]["live"] is True and shown[0]["step_index"] == signal.step_index
            assert shown[0]["explanation"]["what"].startswith("The agent called the tool 'status'")
            listed = http.get(f"{collector.url}/api/signals", params={"detector": "TOOL_LOOP"}).json()
            assert [(s["run_id"], s["live"]) for s in listed["items"]] == [(run_id, True)]
    finally:
        collector.stop()


def test_parallel_tool_calls_of_one_run_on_threads(tmp_path: Path) -> None:
    """ToolNode runs one model turn's tool calls on a thread pool: the run's
    detector state is updated from several threads at once (strict mode
    turns any internal error into a failure here)."""
    from tests.ingest_server import IngestServer

    ingest = IngestServer()
    try:
        dt = Dunetrace(endpoint=ingest.url, flush_interval=0.05, detectors=True)
        handler = DunetraceCallbackHandler(dt, agent_id="parallel-agent")
        turn = [call("status", service=f"s{i}") for i in range(4)]
        for _ in range(5):
            agent([turn] * 3 + ["done"], [status]).invoke(question(), config={"callbacks": [handler]})
        assert dt.flush(5)
        dt.shutdown(5)
        loops = [
            e
            for e in ingest.events
            if e["event_type"] == "external.signal" and e["payload"]["signal_name"] == "TOOL_LOOP"
        ]
        assert len(loops) == 5  # once per run
        assert dt.detectors is not None and dt.detectors.open_runs == 0
    finally:
        ingest.close()
