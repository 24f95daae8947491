"""The scripted OpenAI API of fakes.py on a real HTTP server on 127.0.0.1,
for clients the tests cannot hand a transport (LangChain's ``ChatOpenAI``
builds its own) and for calls that must overlap in time.

A request whose last message says :data:`HELD` is answered only once the
test calls :meth:`LocalOpenAI.release` (at most ten seconds later), and
:attr:`LocalOpenAI.held` is set when it arrives: the test then knows that
call is in flight while it makes another.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

from .fakes import FakeOpenAI

HELD = "hold this call"


def _held(body: dict[str, Any]) -> bool:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return False
    content = messages[-1].get("content") if isinstance(messages[-1], dict) else None
    return content == HELD


class LocalOpenAI:
    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        self.held = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet test output
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                body = json.loads(raw or b"{}")
                if _held(body):
                    server.held.set()
                    server._release.wait(10)
                with server._lock:  # the script is taken in arrival order
                    reply = server.fake(httpx.Request("POST", f"http://local{self.path}", content=raw))
                streamed = reply.headers.get("content-type") == "text/event-stream"
                self.send_response(reply.status_code)
                for name, value in reply.headers.items():
                    if name.lower() not in ("content-length", "transfer-encoding", "connection"):
                        self.send_header(name, value)
                if streamed:
                    # No length: the body ends when the connection closes.
                    self.send_header("Connection", "close")
                    self.close_connection = True
                    self.end_headers()
                    for piece in reply.iter_raw():
                        self.wfile.write(piece)
                        self.wfile.flush()
                    return
                content = reply.read()
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        host, port = self._server.server_address[:2]
        #: The ``base_url`` an OpenAI client or ChatOpenAI takes.
        self.url = f"http://{host}:{port}/v1"

    def release(self) -> None:
        self._release.set()

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
