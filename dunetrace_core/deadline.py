"""A total deadline per ingest request, under httpx.

httpx's timeouts bound each socket operation, not the request: a server
that answers one byte a second never trips a 10 s read timeout and holds
the request (and every later batch of its agent) for as long as it likes.
Here every read, write and connect of the exporter's connections is given
at most the time left before the request's deadline, and one past it fails
with httpcore's own ``ReadTimeout`` / ``WriteTimeout`` / ``ConnectTimeout``,
which httpx raises as its ``TimeoutException`` subclasses.

The deadline is per thread (each sender thread carries one request at a
time): :func:`request_deadline` sets it around a request.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import httpcore

if TYPE_CHECKING:
    import ssl
    from collections.abc import Iterable

    import httpx

__all__ = ["install_deadline", "request_deadline"]

_local = threading.local()

#: Bytes handed to the socket at a time, so a server that reads slowly
#: meets the deadline between pieces rather than after the whole body. A
#: batch of 500 ordinary events (~150 KB) goes in one piece.
_WRITE_CHUNK = 1024 * 1024

#: The longest write taken for a request's head, held to go with its body.
_HEAD = 8192


class request_deadline:
    """``with request_deadline(seconds):`` every socket operation in the
    block, on this thread, ends by ``seconds`` from now. (A class, not a
    generator: it is entered once per request.)"""

    __slots__ = ("_at",)

    def __init__(self, seconds: float) -> None:
        self._at = time.monotonic() + seconds

    def __enter__(self) -> None:
        _local.at = self._at

    def __exit__(self, *exc: object) -> None:
        _local.at = None


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    at: float | None = getattr(_local, "at", None)
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the request's total deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream
        # A request's head, held until its body follows (see write).
        self._head = b""

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._head:
            self._send_head(timeout)
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._head:
            buffer = self._head + buffer
            self._head = b""
        elif len(buffer) <= _HEAD and buffer.endswith(b"\r\n\r\n"):
            # h11 writes a request's head, then its body: one write for both
            # is one send and one wake of the receiver instead of two. The
            # head goes alone if a read or a close comes first.
            self._head = buffer
            return
        if len(buffer) <= _WRITE_CHUNK:
            self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))
            return
        view = memoryview(buffer)
        for start in range(0, len(view), _WRITE_CHUNK):
            self._stream.write(view[start : start + _WRITE_CHUNK].tobytes(), _left(timeout, httpcore.WriteTimeout))

    def _send_head(self, timeout: float | None) -> None:
        head, self._head = self._head, b""
        self._stream.write(head, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._head = b""
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        stream = self._stream.start_tls(ssl_context, server_hostname, _left(timeout, httpcore.ConnectTimeout))
        return _DeadlineStream(stream)

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(
            host, port, _left(timeout, httpcore.ConnectTimeout), local_address, socket_options
        )
        return _DeadlineStream(stream)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        stream = self._backend.connect_unix_socket(path, _left(timeout, httpcore.ConnectTimeout), socket_options)
        return _DeadlineStream(stream)

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def install_deadline(transport: httpx.BaseTransport) -> bool:
    """Give ``transport``'s connections the per-thread deadline. False when
    it has no httpcore pool to wrap (a test's MockTransport, or an httpx
    whose ``HTTPTransport`` no longer keeps one in ``_pool``)."""
    # httpx.HTTPTransport (0.18 to 0.28 at least) keeps its httpcore pool in
    # ``_pool``; the pool (plain, HTTP or SOCKS proxy) opens connections
    # through ``_network_backend``. Neither takes a backend as an argument.
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if backend is None:
        return False
    if not isinstance(backend, _DeadlineBackend):
        pool._network_backend = _DeadlineBackend(backend)  # type: ignore[union-attr]
    return True
