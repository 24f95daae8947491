"""Judging in a worker process (what ``dunetrace serve`` does): the signals
are those of judging in the collector's own process, nothing is kept in the
collector's memory for it, and a worker that dies is replaced by judging in
the collector's process."""

from __future__ import annotations

import logging
import multiprocessing
import sqlite3
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from dunetrace.collector.server import BackgroundServer

from .wire import batch, tool_loop_run


def signals_of(server: BackgroundServer, run_id: str) -> list[dict[str, Any]]:
    assert server.collector.judge.wait_idle(30)
    with sqlite3.connect(server.settings.db_path) as db:
        rows = db.execute(
            "SELECT detector, severity, step_index, evidence, explanation FROM signals WHERE run_id = ?", (run_id,)
        ).fetchall()
    return [
        dict(zip(("detector", "severity", "step_index", "evidence", "explanation"), row, strict=True)) for row in rows
    ]


def test_a_worker_process_judges_as_the_collector_would(start_collector: Callable[..., BackgroundServer]) -> None:
    here = start_collector()
    worker = start_collector(judge_worker=True)
    for server in (here, worker):
        for run_id in ("loop-1", "loop-2"):
            response = httpx.post(server.url + "/v1/ingest", json=batch(tool_loop_run(run_id)), timeout=10)
            assert response.status_code == 202
    for run_id in ("loop-1", "loop-2"):
        found = signals_of(worker, run_id)
        assert "TOOL_LOOP" in {s["detector"] for s in found}
        assert found == signals_of(here, run_id)
    assert worker.collector.store._cache == {} and here.collector.store._cache == {}  # judged: let go
    assert not worker.collector.store.keep_rows and worker.collector.judge._worker is not None


def test_a_dead_worker_is_replaced_by_judging_here(
    start_collector: Callable[..., BackgroundServer], caplog: pytest.LogCaptureFixture
) -> None:
    server = start_collector(judge_worker=True)
    httpx.post(server.url + "/v1/ingest", json=batch(tool_loop_run("before")), timeout=10)
    assert "TOOL_LOOP" in {s["detector"] for s in signals_of(server, "before")}
    [process] = multiprocessing.active_children()
    process.kill()
    process.join(5)
    with caplog.at_level(logging.WARNING, logger="dunetrace.collector"):
        httpx.post(server.url + "/v1/ingest", json=batch(tool_loop_run("after")), timeout=10)
        assert "TOOL_LOOP" in {s["detector"] for s in signals_of(server, "after")}
    assert "judged in this process from now on" in caplog.text
    httpx.post(server.url + "/v1/ingest", json=batch(tool_loop_run("later")), timeout=10)
    assert "TOOL_LOOP" in {s["detector"] for s in signals_of(server, "later")}
