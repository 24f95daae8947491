"""A real collector and the real SDK with live detection on: a live signal
is shown, marked live, while its run is still going, and once the run is
judged it is still there once, not found a second time by the collector."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from dunetrace import Dunetrace
from dunetrace.collector.server import BackgroundServer


def wait_until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return value


def test_a_live_signal_shows_while_the_run_goes_on_and_once_after(collector: BackgroundServer) -> None:
    dt = Dunetrace(endpoint=collector.url, flush_interval=0.05, detectors=True)
    with httpx.Client(base_url=collector.url, timeout=10) as http:

        def signals(run_id: str) -> list[dict[str, Any]]:
            return http.get("/api/signals", params={"run_id": run_id}).json()["items"]

        with dt.run("looper", tools=["search"]) as run:
            for _ in range(3):
                step = run.tool_called("search", {"q": "same"})
                run.tool_responded("search", True, latency_ms=1.0, step=step)
            assert dt.flush(5)
            shown = wait_until(lambda: signals(run.run_id))
            assert [(s["detector"], s["live"], s["step_index"]) for s in shown] == [("TOOL_LOOP", True, 3)]
            assert http.get(f"/api/runs/{run.run_id}").json()["run"]["status"] == "open"
            for _ in range(2):  # the loop goes on: the collector must not find it again
                step = run.tool_called("search", {"q": "same"})
                run.tool_responded("search", True, latency_ms=1.0, step=step)
            run.final_answer()
        assert dt.flush(5)
        dt.shutdown(5)
        wait_until(lambda: http.get(f"/api/runs/{run.run_id}").json()["run"]["status"] == "judged")
        after = signals(run.run_id)
        assert [(s["detector"], s["live"]) for s in after] == [("TOOL_LOOP", True)]
        assert after[0]["explanation"]["what"].startswith("The agent called the tool 'search' 3 times")
        assert http.get(f"/api/runs/{run.run_id}").json()["run"]["signal_count"] == 1
