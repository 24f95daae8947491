"""``POST /v1/ingest`` as a plain ASGI app.

This is the collector's hot path: at 500 events a request, Starlette's
``Request``/``JSONResponse`` machinery and the header parsing around it were
a measurable share of the time per batch, so this route reads the body and
writes its answer with the ASGI messages directly. Everything else (the
read API, the dashboard, deploy markers) stays on Starlette.

The answer is sent only after the batch is committed (``Store.ingest``
returns after ``COMMIT`` with ``synchronous=FULL``): a 202 never loses data.
"""

from __future__ import annotations

import hmac
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from anyio import to_thread

from . import _json
from .decode import decode_batch
from .schema import BadRequest, Batch, parse_json, read_batch
from .store import StoreUnavailable

if TYPE_CHECKING:
    from .instance import Collector
    from .settings import Settings

__all__ = ["IngestEndpoint", "TooLarge", "authorized", "refuse_declared_length"]

logger = logging.getLogger("dunetrace.collector")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON_HEADERS = [(b"content-type", b"application/json")]


class TooLarge(Exception):
    """A body over ``max_body_bytes``: 413."""


def refuse_declared_length(declared: bytes | str | None, limit: int) -> None:
    """Raise TooLarge when ``Content-Length`` already says the body is over
    ``limit``, before any of it is read."""
    if declared is not None:
        try:
            if int(declared) > limit:
                raise TooLarge
        except ValueError:
            pass  # the server already refuses a malformed length


class _Gone(Exception):
    """The client went away before its body arrived: nobody to answer."""


def authorized(settings: Settings, body_key: Any, header: str) -> bool:
    """Whether a request may write: in dev mode always; else its key, from
    the body (a string) or else from ``Authorization: Bearer``, must be a
    configured one, compared in constant time, so the answer's timing
    tells nothing of a key."""
    if settings.dev_mode:
        return True
    key = body_key if isinstance(body_key, str) else ""
    if not key and header.lower().startswith("bearer "):
        key = header[7:].strip()
    return any(hmac.compare_digest(key.encode(), known.encode()) for known in settings.api_keys)


class IngestEndpoint:
    """The ASGI app mounted at ``/v1/ingest`` (POST only; the router
    answers other methods)."""

    def __init__(self, collector: Collector) -> None:
        self.collector = collector
        self.settings = collector.settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        activity = self.collector.activity
        activity.begin()
        try:
            await self._handle(scope, receive, send)
        finally:
            activity.end()

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        limit = self.settings.max_body_bytes
        declared = None
        authorization = ""
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        try:
            refuse_declared_length(declared, limit)
            raw = await _read_body(receive, limit)
        except TooLarge:
            self.collector.refused("too_large", f"ingest body over {limit} bytes", scope, 413)
            await _answer(send, 413, _error(f"body larger than {limit} bytes; send smaller batches"), close=True)
            return
        except _Gone:
            return
        # Parsing, checking and storing block (CPU and the disk): a worker
        # thread does them, so the event loop keeps answering meanwhile.
        try:
            status, body, kept = await to_thread.run_sync(self._work, raw, authorization)
        except StoreUnavailable as exc:
            # A database that cannot be written is the collector's trouble,
            # not the caller's: 503, which the SDK retries; /health says so.
            reason = self.collector.health.failed(exc)
            logger.error("batch not stored: %s", reason, extra={"event": "store_error", "reason": reason})
            status, body, kept = (
                503,
                _json.dumps({"detail": "database unavailable; retry later", "reason": reason}).encode(),
                None,
            )
        if status == 202:
            self.collector.health.stored()
        elif status == 401:
            self.collector.refused("auth", "batch with an unknown or no API key", scope, 401)
        elif status == 422:
            self.collector.refused("invalid", f"batch refused: {body[:300].decode('utf-8', 'replace')}", scope, 422)
        await _answer(send, status, body)
        # Freeing a parsed batch (thousands of objects) and what it evicted
        # from the judge's cache takes a while: after the answer, not
        # while the client waits for it.
        del kept
        self.collector.store.release_evicted()

    def _work(self, raw: bytes, authorization: str) -> tuple[int, bytes, Any]:
        """(status, body, the parsed batch: for the caller to free)."""
        decoded = decode_batch(raw)
        if decoded is not None:
            if not authorized(self.settings, decoded[0], authorization):
                return 401, _error("unknown or inactive API key"), decoded
            answer = self._store(decoded[1])
            if answer is not None:
                return answer
        # Not plainly valid, or not storable as msgspec read it: the checks
        # that name what is wrong, on the standard parse.
        try:
            data = parse_json(raw)
            if isinstance(data, dict) and not authorized(self.settings, data.get("api_key"), authorization):
                return 401, _error("unknown or inactive API key"), data
            _, _, batch = read_batch(data)
        except BadRequest as exc:
            return 422, _json.dumps(exc.to_dict()).encode(), None
        answer = self._store(batch)
        if answer is None:
            bad = BadRequest("events", "a payload is nested too deeply to store (at most 250 levels)")
            return 422, _json.dumps(bad.to_dict()).encode(), batch
        return answer

    def _store(self, batch: Batch) -> tuple[int, bytes, Any] | None:
        """Store a checked batch: the answer, or None when a payload cannot
        be written (nested deeper than orjson writes, or an integer past 64
        bits as msgspec reads it; the standard parse reads it as a float)."""
        batch_id = uuid.uuid4().hex
        try:
            _, ended = self.collector.store.ingest_batch(batch, batch_id)
        except UnicodeEncodeError:
            bad = BadRequest("body", "contains a string that is not valid Unicode (a lone surrogate)")
            return 422, _json.dumps(bad.to_dict()).encode(), batch
        except BadRequest as refused:  # a value this store cannot hold (PostgreSQL: U+0000)
            return 422, _json.dumps(refused.to_dict()).encode(), batch
        except _json.EncodeError:  # rolled back: nothing was stored
            return None
        if ended:
            self.collector.judge.submit(ended)
        answer = b'{"accepted":%d,"batch_id":"%s","queued_at":%r}' % (batch.count, batch_id.encode(), time.time())
        return 202, answer, batch


def _error(detail: str) -> bytes:
    return _json.dumps({"detail": detail}).encode()


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Gone
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise TooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _answer(send: Send, status: int, body: bytes, close: bool = False) -> None:
    headers = [*_JSON_HEADERS, (b"content-length", str(len(body)).encode())]
    if close:  # the rest of the body is not read: the connection cannot go on
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
