"""The judge worker's lifetime, with a real ``dunetrace serve``: after kill
-9 of the collector the worker process ends by itself (even one that was
stopped at that moment), and the next collector judges the runs the dead
one left unjudged, each once."""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import httpx

from .serve import Serve, alive, descendants
from .wire import batch, tool_loop_run


def statuses(db: Path) -> dict[str, str]:
    with sqlite3.connect(db) as conn:
        return dict(conn.execute("SELECT run_id, status FROM runs").fetchall())


def tool_loops(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT run_id, COUNT(*) FROM signals WHERE detector = 'TOOL_LOOP' GROUP BY run_id")
        return dict(rows.fetchall())


def judge_worker(pid: int) -> int:
    for child in descendants(pid):
        try:
            with open(f"/proc/{child}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    return child
        except OSError:
            continue
    raise AssertionError(f"no judge worker below {pid}")


def wait_for(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_the_worker_ends_with_a_killed_collector_and_a_restart_judges_what_was_left(tmp_path: Path) -> None:
    db = tmp_path / "life.db"
    first = Serve(db)
    try:
        assert httpx.post(first.url + "/v1/ingest", json=batch(tool_loop_run("warm-up"))).status_code == 202
        wait_for(lambda: statuses(db).get("warm-up") == "judged", 30, "the worker never judged")
        worker = judge_worker(first.process.pid)
        below = descendants(first.process.pid)
        # The worker stopped mid-work: the runs that end now stay unjudged.
        os.kill(worker, signal.SIGSTOP)
        left = [f"left-{i}" for i in range(20)]
        for run_id in left:
            assert httpx.post(first.url + "/v1/ingest", json=batch(tool_loop_run(run_id))).status_code == 202
        time.sleep(1.0)
        assert {statuses(db)[r] for r in left} == {"ended"}
        first.process.kill()  # kill -9
        first.process.wait(10)
        os.kill(worker, signal.SIGCONT)
        # Everything the collector started ends without it.
        wait_for(
            lambda: not any(alive(pid) for pid in below),
            10,
            f"still running after the collector was killed: {[p for p in below if alive(p)]}",
        )
    finally:
        first.stop()
    second = Serve(db)
    try:
        wait_for(lambda: set(statuses(db).values()) == {"judged"}, 30, f"left unjudged: {statuses(db)}")
        found = tool_loops(db)
        assert all(found.get(run_id) == 1 for run_id in [*left, "warm-up"]), found
        below = descendants(second.process.pid)
        assert below  # its own worker
    finally:
        err = second.stop()
    wait_for(lambda: not any(alive(pid) for pid in below), 10, "the worker outlived a stopped collector")
    assert "Traceback" not in err, err[-3000:]
