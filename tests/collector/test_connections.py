"""Connections to a real ``dunetrace serve`` process: a thousand idle
connections do not lock out ``/health`` (the process runs with 1,024 file
descriptors, as many machines give by default); slow headers and bodies
are cut off at their deadlines while a kept-alive connection between
requests is left alone; a body over the limit gets 413 before it is sent."""

from __future__ import annotations

import resource
import socket
import time
from pathlib import Path

import httpx

from .serve import Serve
from .wire import batch, tool_loop_run


def read_all(sock: socket.socket, timeout: float) -> tuple[bytes, float]:
    """What the server sends until it closes (or ``timeout``), and when it closed."""
    sock.settimeout(timeout)
    started = time.monotonic()
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data, time.monotonic() - started


def test_a_thousand_idle_connections_do_not_lock_out_health(tmp_path: Path) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    with Serve(tmp_path / "c.db", fd_limit=1024) as server:
        idle = []
        try:
            for _ in range(1000):
                idle.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
            time.sleep(0.5)  # let the server accept them all
            started = time.monotonic()
            answer = httpx.get(server.url + "/health", timeout=5)
            took = time.monotonic() - started
            assert answer.status_code == 200 and took < 1.0, (answer.status_code, took)
            # Ingest works too, and the server is the same process.
            posted = httpx.post(server.url + "/v1/ingest", json=batch(tool_loop_run("busy")), timeout=5)
            assert posted.status_code == 202
            assert server.process.poll() is None
        finally:
            for sock in idle:
                sock.close()
        err = server.stop()
    assert "refused (connections)" in err and "the limit is 768" in err, err[-3000:]
    assert "Too many open files" not in err and "Traceback" not in err, err[-3000:]


def test_slow_clients_are_cut_off_and_kept_alive_ones_are_not(tmp_path: Path) -> None:
    with Serve(tmp_path / "s.db", "--header-timeout", "1", "--body-timeout", "1") as server:
        address = ("127.0.0.1", server.port)
        silent = socket.create_connection(address)
        trickle = socket.create_connection(address)
        stalled = socket.create_connection(address)
        kept = socket.create_connection(address)
        with silent, trickle, stalled, kept:
            stalled.sendall(
                b"POST /v1/ingest HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                b'content-length: 1000\r\n\r\n{"api_key": '
            )
            kept.sendall(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            first, _ = read_all_response(kept)
            assert first.startswith(b"HTTP/1.1 200")
            # A byte every 0.3 s: the headers never complete in time.
            started = time.monotonic()
            trickle.settimeout(0.05)
            received = b""
            for byte in b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: " + b"a" * 40:
                try:
                    trickle.sendall(bytes([byte]))
                except (BrokenPipeError, ConnectionResetError):
                    break
                try:
                    received += trickle.recv(4096)
                    if received:
                        break
                except TimeoutError:
                    pass
                time.sleep(0.3)
            assert received.startswith(b"HTTP/1.1 408"), received
            assert time.monotonic() - started < 3.5
            data, took = read_all(silent, 5)
            assert data == b"" and took < 3, took  # closed, nothing asked, nothing answered
            data, took = read_all(stalled, 5)
            assert data.startswith(b"HTTP/1.1 408") and took < 3, (data, took)
            # Between requests a kept-alive connection is not held to the
            # header deadline (uvicorn's 30 s keep-alive applies).
            kept.sendall(b"GET /health HTTP/1.1\r\nhost: 127.0.0.1\r\n\r\n")
            second, _ = read_all_response(kept)
            assert second.startswith(b"HTTP/1.1 200"), second
            # A second request whose headers stall is cut off like a first.
            kept.sendall(b"GET /health HTTP/1.1\r\nhost: 127.")
            data, took = read_all(kept, 5)
            assert data.startswith(b"HTTP/1.1 408") and took < 2.5, (data, took)
        err = server.stop()
    assert "refused (header_timeout)" in err and "refused (body_timeout)" in err


def read_all_response(sock: socket.socket) -> tuple[bytes, float]:
    """One response with a Content-Length, read from a kept-alive connection."""
    sock.settimeout(5)
    started = time.monotonic()
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body, time.monotonic() - started


def test_a_body_over_the_limit_gets_413_before_it_is_sent(tmp_path: Path) -> None:
    with Serve(tmp_path / "b.db") as server:
        for path in (b"/v1/ingest", b"/v1/deploy", b"/api/runs"):
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                # 100 MB announced, not a byte of it sent.
                sock.sendall(
                    b"POST " + path + b" HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
                    b"content-length: 104857600\r\n\r\n"
                )
                data, took = read_all(sock, 5)
                assert data.startswith(b"HTTP/1.1 413") and took < 1, (path, data[:200], took)
        assert httpx.post(server.url + "/v1/ingest", json=batch(tool_loop_run("after")), timeout=5).status_code == 202


def test_a_websocket_outlives_the_header_deadline(tmp_path: Path) -> None:
    """A WebSocket (a live view of the dashboard, say) is past its HTTP
    request: the header deadline no longer applies to it."""
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket
    from websockets.sync.client import connect

    from dunetrace.collector.server import BackgroundServer
    from dunetrace.collector.settings import Settings

    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        while True:
            await websocket.send_text(await websocket.receive_text())

    server = BackgroundServer(Settings(db_path=str(tmp_path / "w.db"), header_timeout=0.3))
    server.app.router.routes.append(WebSocketRoute("/echo", echo))
    with server, connect(f"ws://127.0.0.1:{server.port}/echo", open_timeout=5) as websocket:
        time.sleep(1.2)  # four header deadlines
        websocket.send("still here")
        assert websocket.recv(timeout=5) == "still here"
