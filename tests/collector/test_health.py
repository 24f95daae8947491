"""``/health`` tells the truth and never hangs: 503 with the reason when a
write would fail (the database locked by another process, or files that
cannot be written: the process's file-size limit set to one byte, which
fails writes as a full disk does), 200 once a write succeeds again."""

from __future__ import annotations

import resource
import sqlite3
import time
from pathlib import Path

import httpx

from dunetrace.collector.server import BackgroundServer

from .serve import Serve
from .wire import batch, tool_loop_run


def health(url: str) -> tuple[int, dict[str, str], float]:
    started = time.monotonic()
    answer = httpx.get(url + "/health", timeout=10)
    return answer.status_code, answer.json(), time.monotonic() - started


def test_a_locked_database_is_503_within_a_second(collector: BackgroundServer) -> None:
    assert health(collector.url)[0] == 200
    other = sqlite3.connect(collector.settings.db_path, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")  # another process holding the file
    try:
        time.sleep(1.1)  # past the cached answer
        for _ in range(3):
            status, body, took = health(collector.url)
            assert status == 503 and body["reason"] == "database is locked", body
            assert body["status"] == "unavailable" and body["db"] == "error"
            assert took < 1.5, took
    finally:
        other.execute("ROLLBACK")
        other.close()
    time.sleep(1.1)
    assert health(collector.url)[:2] == (200, {"status": "ok", "version": body["version"], "db": "ok"})


def test_unwritable_files_are_503_until_a_batch_is_stored_again(tmp_path: Path) -> None:
    with Serve(tmp_path / "f.db", "--judge-in-process") as server:
        assert httpx.post(server.url + "/v1/ingest", json=batch(tool_loop_run("before"))).status_code == 202
        resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
        time.sleep(1.1)
        status, body, took = health(server.url)  # the probe's own write fails
        assert status == 503 and body["reason"] == "disk I/O error" and took < 1.5, body
        answer = httpx.post(server.url + "/v1/ingest", json=batch(tool_loop_run("during")), timeout=40)
        assert answer.status_code == 503 and answer.json()["reason"] == "disk I/O error"
        assert health(server.url)[0] == 503
        resource.prlimit(server.process.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        # The last batch failed: still 503 (for up to STICKY seconds)...
        assert health(server.url)[0] == 503
        # ...until a batch is stored again.
        assert httpx.post(server.url + "/v1/ingest", json=batch(tool_loop_run("after"))).status_code == 202
        assert health(server.url)[0] == 200
        err = server.stop()
    assert "batch not stored: disk I/O error" in err, err[-2000:]
