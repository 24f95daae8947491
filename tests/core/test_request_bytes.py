"""What the exporter's connections put on the wire, read by a raw TCP
server on 127.0.0.1: a request's head goes out with its body in one write
(the stream holds the head back), and a request with no body, or a
connection that reads first, still sends its head."""

from __future__ import annotations

import socket
import threading
import time

from dunetrace.export import ExportBatch
from dunetrace.http_export import HttpExporter
from dunetrace.options import Options

ANSWER = b'HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{"accepted": 1}'


class RawServer:
    """Accepts one connection at a time; for each request, records the
    bytes each recv() returned until the request was complete, then answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.requests: list[list[bytes]] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                while self._one(conn):
                    pass

    def _one(self, conn: socket.socket) -> bool:
        reads: list[bytes] = []
        data = b""
        while True:
            chunk = conn.recv(1 << 20)
            if not chunk:
                return False
            reads.append(chunk)
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if not sep:
                continue
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            if len(body) >= length:
                break
        self.requests.append(reads)
        conn.sendall(ANSWER)
        return True

    def close(self) -> None:
        self.sock.close()


def test_a_batch_leaves_as_one_write_with_its_head() -> None:
    """With the head and a small body sent apart, the server's first read
    finds the head alone (the body is written after it, once h11 has it);
    sent together, the first read holds the whole request."""
    server = RawServer()
    exporter = HttpExporter(Options(endpoint=server.url))
    try:
        body = b'{"api_key":"","agent_id":"a","events":[{"event_type":"tool.called"}]}'
        for _ in range(20):
            assert exporter.dunetrace_export(ExportBatch("a", body, 1)).outcome == "ok"
    finally:
        exporter.close()
        server.close()
    assert len(server.requests) == 20
    # One read each: head and body arrived in one segment. (Written apart,
    # a reader waiting on the socket wakes for the head alone.)
    assert all(len(reads) == 1 and reads[0].endswith(body) for reads in server.requests), [
        [len(r) for r in reads] for reads in server.requests
    ]


def test_a_request_without_a_body_still_sends_its_head() -> None:
    """A GET has no body to carry its head: the stream sends it when the
    response is read, not after the request's deadline."""
    server = RawServer()
    exporter = HttpExporter(Options(endpoint=server.url, request_timeout=5))
    try:
        client = exporter._http()  # the exporter's client: its connections hold heads back
        start = time.monotonic()
        answer = client.get(server.url + "/v1/health")
        assert answer.status_code == 202
        assert time.monotonic() - start < 2
    finally:
        exporter.close()
        server.close()
    assert server.requests[0][0].startswith(b"GET /v1/health HTTP/1.1\r\n")
