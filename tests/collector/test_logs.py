"""The collector's log, as a log shipper reads it: a real ``dunetrace serve
--log-format json`` writes one JSON object a line to stderr: its start
(address, database, auth mode), every class of refused request, a judge
worker that died, and each alert delivered; ``--log-level`` filters."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from .serve import Serve
from .test_process_lifetime import judge_worker
from .wire import batch, event, tool_loop_run

KEY = "log-key"


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[bytes]]]:
    """A webhook receiver on 127.0.0.1 answering 200."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers.get("content-length", 0))))
            self.send_response(200)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}/hook", received
    server.shutdown()
    server.server_close()


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines
    return [json.loads(line) for line in lines]  # every line is one JSON object


def test_json_logs_of_start_refusals_judge_and_alerts(tmp_path: Path, receiver: tuple[str, list[bytes]]) -> None:
    hook, received = receiver
    server = Serve(tmp_path / "l.db", "--api-key", KEY, "--log-format", "json", "--webhook", hook)
    try:
        url = server.url
        ok = batch(tool_loop_run("alerting"), api_key=KEY)
        httpx.get(url + "/api/runs", headers={"host": "evil.example"})  # host
        httpx.post(url + "/v1/ingest", json=ok, headers={"origin": "http://evil.example"})  # cross_site
        httpx.post(url + "/v1/ingest", content=json.dumps(ok), headers={"content-type": "text/plain"})  # content_type
        httpx.get(url + "/api/runs")  # auth
        httpx.post(url + "/v1/ingest", json={**ok, "api_key": "wrong"})  # auth
        httpx.post(url + "/v1/ingest", content=b"x" * (6 * 1024 * 1024), headers={"content-type": "application/json"})
        httpx.post(url + "/v1/ingest", json=batch([event("no.such.type")], api_key=KEY))  # invalid
        assert httpx.post(url + "/v1/ingest", json=ok).status_code == 202
        deadline = time.monotonic() + 30
        while not received:
            assert time.monotonic() < deadline, "no alert reached the webhook"
            time.sleep(0.1)
        # A judge worker that dies is a judge error, logged; judging goes on.
        os.kill(judge_worker(server.process.pid), signal.SIGKILL)
        assert httpx.post(url + "/v1/ingest", json=batch(tool_loop_run("after-worker"), api_key=KEY)).status_code == 202
        while len(received) < 2:
            assert time.monotonic() < deadline + 30, "no alert after the worker died"
            time.sleep(0.1)
    finally:
        err = server.stop()
    entries = json_lines(err)
    [start] = [e for e in entries if e.get("event") == "start"]
    assert start["address"] == f"127.0.0.1:{server.port}" and start["database"] == str(tmp_path / "l.db")
    assert start["auth"] == "api_keys" and start["api_keys"] == 1 and start["level"] == "info"
    assert KEY not in err  # the key itself is never logged
    refused = {e["refused"] for e in entries if e.get("event") == "refused"}
    assert refused >= {"host", "cross_site", "content_type", "auth", "too_large", "invalid"}, refused
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry), entry
        if entry.get("event") == "refused":
            assert entry["level"] == "warning" and entry["status"] >= 400
    messages = [e["message"] for e in entries]
    assert sum("alert (" in m and "sent to the webhook" in m for m in messages) >= 2, messages
    assert any("judge process failed" in m for m in messages), messages
    assert any(e["logger"].startswith("uvicorn") for e in entries)  # uvicorn's own lines too
    assert hook.split("/hook")[0] not in "".join(messages)  # webhook URLs are secrets: not logged by httpx


def test_log_level_and_text_format(tmp_path: Path) -> None:
    server = Serve(tmp_path / "t.db", "--log-level", "warning")
    try:
        with httpx.Client() as client:
            for _ in range(25):  # a client retrying in a loop
                client.get(server.url + "/api/runs", headers={"host": "evil.example"})
    finally:
        err = server.stop()
    assert "dunetrace collector on http" not in err  # info: filtered out
    lines = [line for line in err.splitlines() if "refused (host)" in line]
    assert len(lines) == 20  # then counted, not logged, until the window ends
    line = lines[0]
    assert "WARNING" in line and "refused=host" in line and line[:4].isdigit()
    with pytest.raises(ValueError):
        json.loads(line)


@given(st.text(max_size=60), st.text(max_size=60))
def test_a_request_value_cannot_forge_a_log_line(message_value: str, path: str) -> None:
    import io
    import logging

    from dunetrace.collector import logs

    for fmt in ("text", "json"):
        stream = io.StringIO()
        logs.configure("info", fmt, stream)
        try:
            logging.getLogger("dunetrace.collector").warning("refused: %s", message_value, extra={"path": path})
        finally:
            logging.getLogger().handlers = [
                h for h in logging.getLogger().handlers if h.get_name() != "dunetrace-collector"
            ]
        lines = stream.getvalue().splitlines()
        assert len(lines) == 1, lines
        if fmt == "json":
            assert json.loads(lines[0])["path"] == path
