"""The read-only JSON API under ``/api``: what the dashboard and the
``dunetrace runs`` / ``dunetrace signals`` commands show.

Every list answers ``{"items", "total", "limit", "offset", "next_offset"}``;
``next_offset`` is null on the last page. ``/api/timeline`` is an agent's
chart over time (dashboard_reads.py); ``/api/signals?since=`` a time window.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from anyio import to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .dashboard_reads import RANGES, ReadCache, run_tree, signals_since, timeline
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


def _since(request: Request) -> float | None:
    raw = request.query_params.get("since")
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        raise BadQuery("since", "must be unix seconds") from None
    if not 0 <= value <= 1e11:
        raise BadQuery("since", "must be unix seconds")
    return value


def _range(request: Request) -> str:
    raw = request.query_params.get("range", "24h")
    if raw not in RANGES:
        raise BadQuery("range", f"must be one of {', '.join(RANGES)}")
    return raw


def api_routes(store: Store) -> list[Route]:
    cache = ReadCache(store)

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
        # Child runs (sub-agents, crew members) with their own events: the
        # run page draws them as a tree under this run.
        children = cache.get(("tree", run_id), lambda: run_tree(store, found))
        return {"run": found, "events": store.run_events(run_id), "signals": signals, "children": children}

    def signals(request: Request) -> dict[str, Any]:
        limit, offset = _page(request)
        filters = {
            "agent_id": request.path_params.get("agent_id") or request.query_params.get("agent_id") or None,
            "severity": _severity(request),
            "detector": _detector(request),
        }
        since = _since(request)
        if since is None:
            items, total = store.signals(**filters, limit=limit, offset=offset)
        else:
            items, total = signals_since(store, since, filters, limit, offset)
        return _listing(items, total, limit, offset)

    def chart(request: Request) -> dict[str, Any]:
        agent_id, range_name, now = request.query_params.get("agent_id") or None, _range(request), time.time()
        # The window moves a bucket at a time: the same bucket, the same answer.
        bucket = math.floor(now / RANGES[range_name][1])
        return cache.get(("timeline", agent_id, range_name, bucket), lambda: timeline(store, agent_id, range_name, now))

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
        Route("/api/timeline", endpoint(chart), methods=["GET"]),
    ]
