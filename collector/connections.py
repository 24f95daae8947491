"""Connections: deadlines for slow clients and a cap below the
file-descriptor limit.

uvicorn (0.55) closes a keep-alive connection after ``timeout_keep_alive``
of silence between requests, but gives a client as long as it likes to
connect and send nothing, to send its headers a byte at a time, or to
stall in the middle of a body; and it accepts connections until the
process runs out of file descriptors, after which ``accept`` fails and
every new client, ``/health`` included, is reset. This module wraps
uvicorn's HTTP protocol class:

- a request's headers must arrive within ``header_timeout`` seconds of
  the connection opening (or of its first byte, on a kept-alive
  connection); its body within ``body_timeout`` seconds of the headers;
  else 408 and the connection is closed;
- at most ``cap`` connections are open: a new one beyond that closes the
  connection that has been idle (no request under way) the longest, or,
  when every connection has a request under way, is answered 503 and
  closed at once. A thousand idle connections cannot lock out ``/health``.

Only attributes both of uvicorn's HTTP/1.1 protocols (h11, httptools)
have are used: ``transport``, ``cycle`` (``more_body``,
``response_complete``), ``on_response_complete``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from .logs import RefusalLog

__all__ = ["ConnectionGuard", "guarded_protocol"]

logger = logging.getLogger("dunetrace.collector")


def _raw_answer(status: bytes, detail: str, *headers: bytes) -> bytes:
    """A whole HTTP/1.1 answer, written straight to a connection whose
    request uvicorn has not parsed (or not finished)."""
    body = b'{"detail":"%s"}' % detail.encode()
    head = [
        b"HTTP/1.1 " + status,
        b"content-type: application/json",
        b"content-length: %d" % len(body),
        b"connection: close",
        b"x-content-type-options: nosniff",
        *headers,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


_TIMEOUT_408 = _raw_answer(b"408 Request Timeout", "the request did not arrive in time")
_BUSY_503 = _raw_answer(b"503 Service Unavailable", "too many connections; retry", b"retry-after: 1")


class ConnectionGuard:
    """The open connections of one server and their deadlines."""

    def __init__(self, cap: int, header_timeout: float, body_timeout: float, refused: RefusalLog | None = None) -> None:
        self.cap = cap
        self.refused = refused or RefusalLog()
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        #: protocol -> None, in the order they were opened.
        self.open: dict[Any, None] = {}
        self._sweeping: asyncio.TimerHandle | None = None
        self._interval = max(0.05, min(1.0, header_timeout / 4, body_timeout / 4))
        self._shed = 0
        self._last_shed_log = 0.0

    # -- events from the protocol ---------------------------------------------

    def opened(self, conn: Any) -> None:
        now = time.monotonic()
        conn._dt_waiting_since = now  # headers expected from now
        conn._dt_first_byte = None
        conn._dt_cycle = None
        conn._dt_body_since = now
        self.open[conn] = None
        if len(self.open) > self.cap and not self._make_room(conn):
            self._note_shed()
            conn.transport.write(_BUSY_503)
            conn.transport.close()
            return
        if self._sweeping is None:
            loop = asyncio.get_running_loop()
            self._sweeping = loop.call_later(self._interval, self._sweep, loop)

    def closed(self, conn: Any) -> None:
        self.open.pop(conn, None)

    def received(self, conn: Any) -> None:
        """Before the protocol parses bytes that arrived."""
        if conn._dt_first_byte is None and _waiting(conn):
            conn._dt_first_byte = time.monotonic()

    def parsed(self, conn: Any) -> None:
        """After: a new request cycle means its headers are complete."""
        if _upgraded(conn):
            self.open.pop(conn, None)  # a WebSocket now: not an HTTP request's business
            return
        cycle = getattr(conn, "cycle", None)
        if cycle is not None and cycle is not conn._dt_cycle:
            conn._dt_cycle = cycle
            conn._dt_body_since = time.monotonic()

    def responded(self, conn: Any) -> None:
        conn._dt_waiting_since = time.monotonic()
        conn._dt_first_byte = None

    # -- deadlines and the cap ------------------------------------------------

    def _make_room(self, newcomer: Any) -> bool:
        """Close the connection idle the longest; False when none is."""
        idle = [c for c in self.open if c is not newcomer and _waiting(c) and c._dt_first_byte is None]
        if not idle:
            return False
        oldest = min(idle, key=lambda c: c._dt_waiting_since)
        self._note_shed()
        self.open.pop(oldest, None)
        oldest.transport.close()
        return True

    def _note_shed(self) -> None:
        self._shed += 1
        now = time.monotonic()
        if now - self._last_shed_log >= 10:
            self._last_shed_log = now
            self.refused(
                "connections",
                f"{len(self.open)} connections open, the limit is {self.cap}: closing idle ones ({self._shed} so far)",
                None,
                503,
            )

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        now = time.monotonic()
        for conn in list(self.open):
            transport = conn.transport
            if transport is None or transport.is_closing():
                continue
            if _upgraded(conn):
                self.open.pop(conn, None)
                continue
            if _waiting(conn):
                started = conn._dt_first_byte if conn._dt_first_byte is not None else conn._dt_waiting_since
                # Silence after a response is uvicorn's keep-alive timeout's
                # business; silence on a new connection and slow headers are ours.
                fresh = conn._dt_cycle is None
                if (fresh or conn._dt_first_byte is not None) and now - started > self.header_timeout:
                    self._expire(conn, "header_timeout", f"no complete request headers in {self.header_timeout:g}s")
            elif conn.cycle.more_body and now - conn._dt_body_since > self.body_timeout:
                self._expire(conn, "body_timeout", f"request body not received in {self.body_timeout:g}s")
        self._sweeping = loop.call_later(self._interval, self._sweep, loop) if self.open else None

    def _expire(self, conn: Any, kind: str, detail: str) -> None:
        client = getattr(conn, "client", None)
        if kind == "header_timeout" and conn._dt_first_byte is None:
            # Connected and sent nothing (browsers open spare connections
            # ahead of need): no request to refuse or answer; closed.
            logger.debug("closed a connection that sent nothing in %gs (%s)", self.header_timeout, client)
            answer = False
        else:
            scope: dict[str, Any] = {"client": client} if client else {}
            if kind == "body_timeout" and getattr(conn, "scope", None):
                scope.update(method=conn.scope.get("method"), path=conn.scope.get("path"))
            self.refused(kind, detail, scope, 408)
            # Between requests, or before the app started its answer.
            answer = kind == "header_timeout" or not getattr(conn.cycle, "response_started", False)
        if answer:
            with contextlib.suppress(Exception):  # the transport is already gone
                conn.transport.write(_TIMEOUT_408)
        self.open.pop(conn, None)
        conn.transport.close()


def _upgraded(conn: Any) -> bool:
    """Whether uvicorn handed the connection to a WebSocket protocol."""
    transport = getattr(conn, "transport", None)
    return transport is not None and transport.get_protocol() is not conn


def _waiting(conn: Any) -> bool:
    """No request under way: before the first, or after a response."""
    cycle = getattr(conn, "cycle", None)
    return cycle is None or cycle.response_complete


def guarded_protocol(guard: ConnectionGuard) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol class (httptools when installed, else h11)
    under ``guard``: pass it as ``uvicorn.Config(http=...)``."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    base: Any = AutoHTTPProtocol

    class GuardedHTTPProtocol(base):  # type: ignore[misc, valid-type]
        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            guard.opened(self)

        def connection_lost(self, exc: Exception | None) -> None:
            guard.closed(self)
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            guard.received(self)
            super().data_received(data)
            guard.parsed(self)

        def on_response_complete(self) -> None:
            guard.responded(self)
            super().on_response_complete()
            guard.parsed(self)  # a pipelined request may have started

    return GuardedHTTPProtocol
