"""The read-only JSON API under ``/api``: what the dashboard and the
``dunetrace runs`` / ``dunetrace signals`` commands show.

Every list answers ``{"items", "total", "limit", "offset", "next_offset"}``;
``next_offset`` is null on the last page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .store.common import StoreUnavailable

if TYPE_CHECKING:
    from .store import Store

__all__ = ["SEVERITIES", "api_routes"]

logger = logging.getLogger("dunetrace.collector")

SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
MAX_LIMIT = 500
MAX_OFFSET = 1_000_000_000


class BadQuery(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


def _int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise BadQuery(name, "must be an integer") from None
    if not low <= value <= high:
        raise BadQuery(name, f"must be between {low} and {high}")
    return value


def _bool(request: Request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise BadQuery(name, "must be true or false")


def _page(request: Request) -> tuple[int, int]:
    return _int(request, "limit", 50, 1, MAX_LIMIT), _int(request, "offset", 0, 0, MAX_OFFSET)


def _listing(items: list[dict[str, Any]], total: int, limit: int, offset: int) -> dict[str, Any]:
    following = offset + len(items)
    return {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next_offset": following if following < total else None,
    }


def _severity(request: Request) -> str | None:
    raw = request.query_params.get("severity")
    if raw is None:
        return None
    if raw.upper() not in SEVERITIES:
        raise BadQuery("severity", f"must be one of {', '.join(SEVERITIES)}")
    return raw.upper()


def _detector(request: Request) -> str | None:
    # ``type`` is what the issue calls it; ``detector`` what a signal calls it.
    raw = request.query_params.get("detector") or request.query_params.get("type")
    return raw.strip().upper() if raw else None


def api_routes(store: Store) -> list[Route]:
    def endpoint(read: Callable[[Request], Any]) -> Callable[[Request], Any]:
        async def handle(request: Request) -> Response:
            try:
                result = await to_thread.run_sync(read, request)
            except StoreUnavailable as exc:
                logger.error("dunetrace collector: database error: %r", exc)
                return JSONResponse({"detail": "database unavailable; retry later"}, status_code=503)
            except BadQuery as exc:
                return JSONResponse({"detail": f"{exc.name}: {exc.message}", "field": exc.name}, status_code=422)
            if result is None:
                return JSONResponse({"detail": "not found"}, status_code=404)
            return JSONResponse(result)

        return handle

    def agents(request: Request) -> dict[str, Any]:
        limit, offset = _page(request)
        items, total = store.agents(limit, offset)
        return _listing(items, total, limit, offset)

    def runs(request: Request) -> dict[str, Any]:
        limit, offset = _page(request)
        agent_id = request.path_params.get("agent_id")
        items, total = store.runs(agent_id, _bool(request, "with_signals"), limit, offset)
        return _listing(items, total, limit, offset)

    def run(request: Request) -> dict[str, Any] | None:
        run_id = request.path_params["run_id"]
        found = store.run(run_id)
        if found is None:
            return None
        signals, _ = store.signals(run_id=run_id, limit=MAX_LIMIT)
        signals.reverse()  # in the order they were found
        return {"run": found, "events": store.run_events(run_id), "signals": signals}

    def signals(request: Request) -> dict[str, Any]:
        limit, offset = _page(request)
        items, total = store.signals(
            agent_id=request.path_params.get("agent_id"),
            severity=_severity(request),
            detector=_detector(request),
            limit=limit,
            offset=offset,
        )
        return _listing(items, total, limit, offset)

    def deploys(request: Request) -> dict[str, Any]:
        limit, offset = _page(request)
        items, total = store.deploys(request.query_params.get("agent_id") or None, limit, offset)
        return _listing(items, total, limit, offset)

    return [
        Route("/api/agents", endpoint(agents), methods=["GET"]),
        Route("/api/agents/{agent_id:path}/runs", endpoint(runs), methods=["GET"]),
        Route("/api/agents/{agent_id:path}/signals", endpoint(signals), methods=["GET"]),
        Route("/api/runs", endpoint(runs), methods=["GET"]),
        Route("/api/runs/{run_id:path}", endpoint(run), methods=["GET"]),
        Route("/api/signals", endpoint(signals), methods=["GET"]),
        Route("/api/deploys", endpoint(deploys), methods=["GET"]),
    ]
