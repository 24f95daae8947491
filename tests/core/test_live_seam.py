"""The live-judgement seam: watchers see every event on the emitting thread,
a fired signal is kept, shipped once per type and handed to listeners, and a
listener that raises never reaches the agent."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from dunetrace import Dunetrace
from dunetrace.live import Signal
from tests.ingest_server import IngestServer


class ThirdCallFires:
    """Fires TOOL_LOOP at a run's third call of one tool."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []
        self.threads: set[int] = set()

    def observe(self, run: Any, event_type: str, step: int, payload: dict[str, Any]) -> None:
        self.seen.append((run.run_id, event_type))
        self.threads.add(threading.get_ident())
        if event_type == "tool.called":
            calls = sum(1 for rid, et in self.seen if rid == run.run_id and et == "tool.called")
            if calls >= 3:
                run.fire(Signal("TOOL_LOOP", "HIGH", 0.9, step, {"tool": payload["tool_name"], "calls": calls}))


def test_watcher_fires_once_ships_and_calls_listener(ingest: IngestServer) -> None:
    got: list[Signal] = []
    dt = Dunetrace(endpoint=ingest.url, flush_interval=0.05, on_signal=got.append)
    watcher = ThirdCallFires()
    dt.add_watcher(watcher)
    seen_during_run: list[int] = []
    with dt.run("looper") as run:
        for _ in range(5):
            run.tool_called("search", {"q": "same"})
            run.tool_responded("search", True)
            seen_during_run.append(len(got))
    assert dt.flush(5)
    dt.shutdown()
    assert seen_during_run == [0, 0, 1, 1, 1]  # on the third call, while the run is live
    assert [s.type for s in run.signals] == ["TOOL_LOOP"] and got[0].run is run
    assert watcher.threads == {threading.get_ident()}
    shipped = [e for e in ingest.events if e["event_type"] == "external.signal"]
    assert len(shipped) == 1
    payload = shipped[0]["payload"]
    assert payload["signal_name"] == "TOOL_LOOP" and payload["source"] == "dunetrace"
    assert payload["severity"] == "HIGH" and payload["confidence"] == 0.9 and payload["live"] is True
    assert payload["evidence"] == {"tool": "search", "calls": 3}


def test_raising_listener_and_watcher_never_reach_the_agent(
    ingest: IngestServer, caplog: pytest.LogCaptureFixture
) -> None:
    from dunetrace import log as dunetrace_log

    dunetrace_log.strict = False  # the guard's own behaviour is under test

    def broken_listener(signal: Signal) -> None:
        raise RuntimeError("user bug")

    class BrokenWatcher:
        def observe(self, *args: Any) -> None:
            raise KeyError("our bug")

    dt = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    dt.on_signal(broken_listener)
    dt.add_watcher(ThirdCallFires())
    dt.add_watcher(BrokenWatcher())
    with caplog.at_level(logging.WARNING, logger="dunetrace"), dt.run("looper") as run:
        for _ in range(4):
            run.tool_called("search")
    dt.shutdown()
    assert [s.type for s in run.signals] == ["TOOL_LOOP"]
    assert sum("on_signal callback" in r.getMessage() for r in caplog.records) == 1
    assert sum("BrokenWatcher" in r.getMessage() for r in caplog.records) == 1
    # run.started, four tool.called, the signal, run.completed: nothing lost to the raising parts
    assert [e["event_type"] for e in ingest.events].count("external.signal") == 1
    assert len(ingest.events) == 7
