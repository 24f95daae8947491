"""A real HTTP ingest server on 127.0.0.1 for tests: records what arrives,
and answers what the test scripts (202 by default)."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Listener(ThreadingHTTPServer):
    # The default backlog of 5 drops the connections of many processes that
    # start sending at once (multiprocessing tests); a dropped SYN is retried
    # only a second later.
    request_queue_size = 128


class IngestServer:
    """``POST /v1/ingest`` and ``/v1/deploy`` recorded; ``script`` holds
    (status, headers) answers to give, in order, before the default 202, and
    ``agent_script`` such answers for one agent's batches (one whose headers
    hold ``beside: 1`` waits for a request that comes while another is in
    progress). ``delay`` holds
    each ingest answer back that many seconds (``agent_delay``: for one
    agent's); ``max_in_flight`` is the most
    ingest requests seen in progress at once, ``same_agent_overlap`` whether
    two of one agent ever were."""

    def __init__(self, port: int = 0) -> None:
        self.bodies: list[bytes] = []
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.deploys: list[dict[str, Any]] = []
        self.script: deque[tuple[int, dict[str, str]]] = deque()
        self.connection_threads: set[int] = set()
        self.agent_script: dict[str, deque[tuple[int, dict[str, str]]]] = {}
        self.delay = 0.0
        self.agent_delay: dict[str, float] = {}
        self.max_in_flight = 0
        self.same_agent_overlap = False
        self._in_flight: dict[str, int] = {}
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(200, {"status": "ok", "version": "test", "db": "ok"})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                agent = ""
                if self.path.endswith("/v1/ingest"):
                    try:
                        agent = str(json.loads(body).get("agent_id", ""))
                    except ValueError:
                        pass
                with server.lock:
                    server.connection_threads.add(threading.get_ident())
                    server.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                    mine = server.agent_script.get(agent)
                    answer = None
                    # An answer marked "beside" waits for a request that
                    # arrives while another is in progress.
                    if mine and (mine[0][1].get("beside") != "1" or sum(server._in_flight.values())):
                        answer = mine.popleft()
                    elif server.script:
                        answer = server.script.popleft()
                    if agent:
                        server.same_agent_overlap |= server._in_flight.get(agent, 0) > 0
                        server._in_flight[agent] = server._in_flight.get(agent, 0) + 1
                        server.max_in_flight = max(server.max_in_flight, sum(server._in_flight.values()))
                try:
                    delay = server.agent_delay.get(agent, server.delay) if agent else 0.0
                    if delay:
                        time.sleep(delay)
                    self._reply(body, answer)
                finally:
                    if agent:
                        with server.lock:
                            server._in_flight[agent] -= 1

            def _reply(self, body: bytes, answer: tuple[int, dict[str, str]] | None) -> None:
                if answer is not None and answer[0] != 202:  # a scripted 202 is the usual answer
                    status, headers = answer
                    if status == -1:  # answer too late: the client has timed out
                        time.sleep(float(headers.get("delay", "1")))
                        self.close_connection = True
                        return
                    if status == 0:  # hang up without answering: a reset
                        self.close_connection = True
                        self.connection.shutdown(2)
                        return
                    self._answer(status, {"detail": "scripted"}, {k: v for k, v in headers.items() if k != "beside"})
                    return
                if self.path == "/v1/deploy":
                    with server.arrived:
                        server.deploys.append(json.loads(body))
                        server.arrived.notify_all()
                    self._answer(202, {"ok": True})
                    return
                data = json.loads(body)
                with server.arrived:
                    server.bodies.append(body)
                    server.arrived.notify_all()
                self._answer(202, {"accepted": len(data["events"]), "batch_id": "b", "queued_at": time.time()})

            def _answer(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

        self.httpd = _Listener(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    @property
    def batches(self) -> list[dict[str, Any]]:
        with self.lock:
            return [json.loads(b) for b in self.bodies]

    @property
    def events(self) -> list[dict[str, Any]]:
        return [e for batch in self.batches for e in batch["events"]]

    def raw(self) -> bytes:
        with self.lock:
            return b"".join(body for _, _, body in self.requests)

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self.events):
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self.arrived:
                self.arrived.wait(min(remaining, 0.1))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
