"""A real HTTP ingest server on 127.0.0.1 for tests: records what arrives,
and answers what the test scripts (202 by default)."""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Listener(ThreadingHTTPServer):
    # The default backlog of 5 drops the connections of many processes that
    # start sending at once (multiprocessing tests); a dropped SYN is retried
    # only a second later.
    request_queue_size = 128


class SlidingWindow:
    """The upstream ingest service's rate limiter, as it is written there:
    per client address, the times of the requests it let through in the
    last ``window`` seconds; a request finding ``limit`` of them is refused
    with a 429 and not counted. Upstream sends no Retry-After; with
    ``retry_after`` this one says when the oldest leaves the window."""

    def __init__(self, limit: int = 60, window: float = 60.0, retry_after: bool = False) -> None:
        self.limit = limit
        self.window = window
        self.retry_after = retry_after
        self.times: dict[str, list[float]] = {}
        #: (when, the Retry-After sent or None) of each 429; when of each pass.
        self.refused: list[tuple[float, int | None]] = []
        self.allowed: list[float] = []

    def check(self, client: str) -> dict[str, str] | None:
        """None when the request may pass, else the 429's headers."""
        now = time.monotonic()
        kept = [t for t in self.times.get(client, []) if now - t < self.window]
        self.times[client] = kept
        if len(kept) >= self.limit:
            wait = math.ceil(kept[0] + self.window - now) if self.retry_after else None
            self.refused.append((now, wait))
            return {} if wait is None else {"Retry-After": str(wait)}
        kept.append(now)
        self.allowed.append(now)
        return None


class IngestServer:
    """``POST /v1/ingest`` and ``/v1/deploy`` recorded; ``script`` holds
    (status, headers) answers to give, in order, before the default 202, and
    ``agent_script`` such answers for one agent's batches (one whose headers
    hold ``beside: 1`` waits for a request that comes while another is in
    progress). ``delay`` holds
    each ingest answer back that many seconds (``agent_delay``: for one
    agent's); ``max_in_flight`` is the most
    ingest requests seen in progress at once, ``same_agent_overlap`` whether
    two of one agent ever were. ``limiter`` (a :class:`SlidingWindow`)
    answers 429 as the upstream service does; ``max_body`` answers 413 to
    larger bodies; ``unavailable`` answers 503; ``validate`` (body -> None
    or (status, answer)) answers for the events it refuses, say with a real
    service's schema check.

    Scripted statuses beyond HTTP's: -1 answers too late (``delay``), 0
    hangs up, -2 drips a 202 one byte every ``every`` seconds; a 2xx whose
    headers hold ``x-raw`` answers that text as its body."""

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
        self.limiter: SlidingWindow | None = None
        self.max_body: int | None = None
        self.validate: Callable[[bytes], tuple[int, Any] | None] | None = None
        #: While set, every ingest request is answered 503.
        self.unavailable = False
        #: Statuses of the 503, 429, 413 and validation answers given, in order.
        self.refusals: list[int] = []
        self._in_flight: dict[str, int] = {}
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            #: An answer is written as headers, then body: without this the
            #: body waits for the client's delayed ACK (~40 ms a request).
            disable_nagle_algorithm = True

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                self._answer(200, {"status": "ok", "version": "test", "db": "ok"})

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length)
                if self.path.endswith("/v1/ingest") and self._refused(body):
                    return
                agent = ""
                if self.path.endswith("/v1/ingest"):
                    with contextlib.suppress(ValueError):
                        agent = str(json.loads(body).get("agent_id", ""))
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
                counted = bool(agent)
                try:
                    delay = server.agent_delay.get(agent, server.delay) if agent else 0.0
                    if delay:
                        time.sleep(delay)
                    # Answered from here on: once the client can read the
                    # answer (or sees the hang-up) it may send the agent's next
                    # batch, which must not count as overlapping this one.
                    if counted:
                        with server.lock:
                            server._in_flight[agent] -= 1
                        counted = False
                    self._reply(body, answer)
                finally:
                    if counted:
                        with server.lock:
                            server._in_flight[agent] -= 1

            def _refused(self, body: bytes) -> bool:
                """A 503, 429, 413 or validation answer, given before anything is recorded."""
                answer: tuple[Any, ...] | None = None
                with server.lock:
                    limited = server.limiter.check(self.client_address[0]) if server.limiter else None
                if server.unavailable:
                    answer = (503, {"detail": "unavailable"})
                elif limited is not None:
                    answer = (429, {"detail": "Rate limit exceeded. Max 60 requests per minute."}, limited)
                elif server.max_body is not None and len(body) > server.max_body:
                    answer = (413, {"detail": f"body larger than {server.max_body} bytes"})
                elif server.validate is not None:
                    answer = server.validate(body)
                if answer is None:
                    return False
                with server.lock:
                    server.refusals.append(answer[0])
                self._answer(*answer)
                return True

            def _drip(self, body: bytes, every: float) -> None:
                raw = json.dumps({"accepted": len(json.loads(body)["events"])}).encode()
                head = f"HTTP/1.1 202 Accepted\r\ncontent-length: {len(raw)}\r\n\r\n".encode()
                try:
                    for i in range(len(head + raw)):
                        self.wfile.write((head + raw)[i : i + 1])
                        self.wfile.flush()
                        time.sleep(every)
                except OSError:  # the client gave up: what the test wants
                    pass
                self.close_connection = True

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
                    if status == -2:
                        self._drip(body, float(headers.get("every", "1")))
                        return
                    if 200 <= status < 300 and "x-raw" in headers:
                        raw = headers["x-raw"].encode()
                        self.send_response(status)
                        self.send_header("content-length", str(len(raw)))
                        self.end_headers()
                        self.wfile.write(raw)
                        with server.arrived:
                            server.bodies.append(body)
                            server.arrived.notify_all()
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
