"""The collector's ASGI app: the ingest API of the contract, the JSON API
the dashboard and ``dunetrace runs`` read, the OpenAPI document, and the
dashboard's static files.

Blocking work (JSON parsing, SQLite) runs in worker threads so the event
loop keeps answering while a batch is written.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from anyio import to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .access import AccessGuard
from .api import api_routes
from .health import Health, unavailable_reason
from .ingest import IngestEndpoint, TooLarge, authorized, refuse_declared_length
from .instance import Collector
from .openapi import openapi_document
from .otlp import BadTraces, TraceReceiver, decode_json, decode_protobuf
from .schema import BadRequest, parse_json, validate_deploy
from .sessions import login_routes
from .settings import Settings
from .store import StoreUnavailable

__all__ = ["Collector", "create_app"]

logger = logging.getLogger("dunetrace.collector")

STATIC = Path(__file__).parent / "static"


def _error(status: int, detail: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


async def _body(request: Request, limit: int) -> bytes:
    refuse_declared_length(request.headers.get("content-length"), limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(settings: Settings | None = None, collector: Collector | None = None) -> Starlette:
    """The collector app. Threads (judge, alerts) start with the ASGI
    lifespan and stop with it."""
    settings = settings or (collector.settings if collector else Settings.from_env())
    collector = collector or Collector(settings)

    async def deploy(request: Request) -> Response:
        try:
            raw = await _body(request, settings.max_body_bytes)
        except TooLarge:
            collector.refused("too_large", f"deploy body over {settings.max_body_bytes} bytes", request.scope, 413)
            return _error(413, f"body larger than {settings.max_body_bytes} bytes", headers={"connection": "close"})

        def work() -> Response:
            try:
                data = parse_json(raw)
                header = request.headers.get("authorization", "")
                if not authorized(settings, data.get("api_key") if isinstance(data, dict) else None, header):
                    collector.refused("auth", "deploy marker with an unknown or no API key", request.scope, 401)
                    return _error(401, "unknown or inactive API key")
                _, agent_id, version, meta = validate_deploy(data)
            except BadRequest as exc:
                collector.refused("invalid", f"deploy marker: {exc}", request.scope, 422)
                return JSONResponse(exc.to_dict(), status_code=422)
            try:
                deploy_id = collector.store.add_deploy(agent_id, version, meta)
            except UnicodeEncodeError:
                return JSONResponse(BadRequest("body", "contains a string that is not valid Unicode").to_dict(), 422)
            except BadRequest as refused:  # a value this store cannot hold (PostgreSQL: U+0000)
                return JSONResponse(refused.to_dict(), 422)
            return JSONResponse({"accepted": True, "id": deploy_id}, status_code=202)

        return await _guard(work, collector.health)

    receiver = TraceReceiver(collector)

    async def traces(request: Request) -> Response:
        # OTLP/HTTP (protobuf or JSON): GenAI spans into runs; see otlp.py.
        try:
            raw = await _body(request, settings.max_body_bytes)
        except TooLarge:
            return _error(413, f"body larger than {settings.max_body_bytes} bytes")
        if not authorized(settings, None, request.headers.get("authorization", "")):
            return _error(401, "unknown or inactive API key")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        gzipped = request.headers.get("content-encoding", "").strip().lower() == "gzip"

        def work() -> Response:
            try:
                body = _gunzip(raw, settings.max_body_bytes) if gzipped else raw
                if kind == "application/json":
                    records = decode_json(body)
                elif kind in ("application/x-protobuf", "application/protobuf"):
                    records = decode_protobuf(body)
                else:
                    wanted = "application/x-protobuf or application/json"
                    raise BadTraces(f"content-type must be {wanted}; got {kind!r}", 415)
            except BadTraces as exc:
                return _error(exc.status, exc.detail)
            receiver.receive(records)
            if kind == "application/json":
                return JSONResponse({})
            return Response(b"", media_type="application/x-protobuf")  # an empty ExportTraceServiceResponse

        return await _guard(work, collector.health)

    async def health(request: Request) -> Response:
        from dunetrace._version import __version__

        problem = await collector.health.problem()
        if problem is None:
            return JSONResponse({"status": "ok", "version": __version__, "db": "ok"})
        body = {"status": "unavailable", "version": __version__, "db": "error", "reason": problem}
        return JSONResponse(body, 503, headers={"retry-after": "5"})

    async def openapi(request: Request) -> Response:
        return JSONResponse(openapi_document())

    async def dashboard(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        collector.start()
        try:
            yield
        finally:
            await to_thread.run_sync(receiver.stop)
            collector.stop()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    async def store_error(request: Request, exc: Exception) -> Response:
        # Any route whose store call failed (the read API included): 503.
        reason = unavailable_reason(exc)
        logger.error(
            "database unavailable: %s (%s %s)",
            reason,
            request.method,
            request.url.path,
            extra={"event": "store_error", "reason": reason},
        )
        return _error(503, "database unavailable; retry later", reason=reason)

    routes = [
        # A plain ASGI app, not a Starlette endpoint: see ingest.py.
        Route("/v1/ingest", IngestEndpoint(collector), methods=["POST"]),
        Route("/v1/deploy", deploy, methods=["POST"]),
        Route("/v1/traces", traces, methods=["POST"]),
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/", dashboard, methods=["GET"]),
        *login_routes(settings, collector.refused),
        *api_routes(collector.store),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[Middleware(AccessGuard, settings=settings, routes=routes, refused=collector.refused)],
        exception_handlers={HTTPException: http_error, sqlite3.Error: store_error, StoreUnavailable: store_error},
    )
    app.state.collector = collector
    return app


def _gunzip(body: bytes, limit: int) -> bytes:
    import zlib

    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = inflate.decompress(body, limit + 1)
    except zlib.error:
        raise BadTraces("body is not valid gzip") from None
    if len(out) > limit:
        raise BadTraces(f"body larger than {limit} bytes once unzipped", 413)
    return out


async def _guard(work: Any, health: Health) -> Response:
    """A database that cannot be written is the collector's trouble, not the
    caller's: 503, which the SDK retries; ``/health`` says so too."""
    try:
        response: Response = await to_thread.run_sync(work)
    except StoreUnavailable as exc:
        reason = health.failed(exc)
        logger.error("request not stored: %s", reason, extra={"event": "store_error", "reason": reason})
        return _error(503, "database unavailable; retry later", reason=reason)
    if response.status_code < 300:
        health.stored()
    return response
