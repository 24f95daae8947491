"""Signals found by the collector reach a webhook: the real SDK reports a
tool loop to a real collector configured with a webhook on 127.0.0.1, and
the receiver gets the signal, signed."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dunetrace import Dunetrace
from dunetrace.collector.alerts import verify_signature
from dunetrace.collector.server import BackgroundServer

from .test_end_to_end import healthy_run, looping_run


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def test_a_tool_loop_alert_reaches_the_webhook(
    start_collector: Callable[..., BackgroundServer], receiver: Receiver
) -> None:
    server = start_collector(webhook_url=receiver.url, webhook_secret="s3cret", alert_min_severity="HIGH")
    dt = Dunetrace(endpoint=server.url, flush_interval=0.05)
    try:
        healthy_run(dt)
        run_id = looping_run(dt)
        assert dt.flush(5)
    finally:
        dt.shutdown(5)
    deadline = time.monotonic() + 10
    while not receiver.received:
        assert time.monotonic() < deadline, "no alert arrived"
        time.sleep(0.05)
    assert server.collector.judge.wait_idle(5)
    assert server.collector.dispatcher.wait_idle(5)
    [(headers, body)] = receiver.received  # the healthy run raised nothing
    assert verify_signature(body, headers.get("x-dunetrace-signature"), "s3cret")
    alert = json.loads(body)
    assert alert["detector"] == "TOOL_LOOP" and alert["severity"] == "HIGH"
    assert alert["run_id"] == run_id and alert["agent_id"] == "agent-a"
    assert alert["explanation"]["what"]
