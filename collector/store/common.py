"""What both stores share: the stored row of an event, turning rows back into
wire events, and the interface the rest of the collector uses.

A store (``SQLiteStore``, ``PostgresStore``) has: ``ingest``/``ingest_batch``
(idempotent by ``event_id``), ``runs_to_judge``, ``save_judgements`` (a run is
judged once, however many processes try), the reads of the API
(``run``, ``runs``, ``agents``, ``signals``, ``deploys``, ``run_events``),
and the alert outbox (``outbox_add``, ``outbox_claim``, ``outbox_done``,
``outbox_retry``, ``outbox_pending``, ``outbox_next_due``).

Either engine raises ``StoreUnavailable`` when the database cannot be read or
written (a locked or full SQLite file, a PostgreSQL server that is down or
restarting): the ingest API answers 503 to it, which the SDK retries.
"""

from __future__ import annotations

import functools
import inspect
import math
import os
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "POSTGRES_EXTRA",
    "Row",
    "StoreUnavailable",
    "describe_target",
    "is_postgres_url",
    "judge_lease_from_env",
    "missing_driver",
    "translate_errors",
    "wire_events",
]

#: What to install for ``--db postgresql://...``.
POSTGRES_EXTRA = "pip install 'dunetrace[postgres]'"

_Store = TypeVar("_Store", bound=type)


class StoreUnavailable(Exception):
    """The database cannot be read or written now; the request may succeed
    later (the ingest API answers 503). The engine's own error is the
    ``__cause__``."""


#: An event as stored: schema.ROW_FIELDS, in that order.
Row = Sequence[Any]


def is_postgres_url(target: str) -> bool:
    """Whether ``--db`` names a PostgreSQL database rather than a SQLite file."""
    return target.startswith(("postgresql://", "postgres://"))


def describe_target(target: str) -> str:
    """``--db`` as it may be printed or logged: a URL without its password."""
    if not is_postgres_url(target):
        return target
    parts = urlsplit(target)
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rpartition('@')[2]}"
    # libpq also takes the password as a parameter: ?password=...
    query = "&".join(
        "password=***" if pair.split("=", 1)[0].lower() == "password" else pair for pair in parts.query.split("&")
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def judge_lease_from_env(default: float = 60.0) -> float:
    """``DUNETRACE_JUDGE_LEASE``: seconds a collector sharing a PostgreSQL
    database holds the runs it claimed to judge; ValueError naming it when
    it is not a positive number."""
    raw = os.environ.get("DUNETRACE_JUDGE_LEASE")
    if not raw:
        return default
    try:
        lease = float(raw)
    except ValueError:
        lease = math.nan
    if not (math.isfinite(lease) and lease > 0):
        raise ValueError(f"DUNETRACE_JUDGE_LEASE={raw!r} must be a positive number of seconds")
    return lease


def missing_driver(target: str) -> str | None:
    """Why ``target`` cannot be opened for want of a package (the message
    names the extra), or None."""
    if not is_postgres_url(target):
        return None
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return f"--db {describe_target(target)} needs the PostgreSQL driver (psycopg 3): {POSTGRES_EXTRA}"
    return None


def translate_errors(cls: _Store) -> _Store:
    """Wrap the public methods of a store class so the engine's errors
    (``cls.engine_errors``) reach callers as ``StoreUnavailable``."""
    for name, method in list(vars(cls).items()):
        if name.startswith("_") or not inspect.isfunction(method):
            continue
        setattr(cls, name, _translated(method))
    return cls


def _translated(method: Any) -> Any:
    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except self.engine_errors as exc:
            raise StoreUnavailable(f"{self.engine} database unavailable: {exc}") from exc

    return call


def wire_events(run_id: str, rows: Iterable[Row]) -> list[dict[str, Any]]:
    """Rows of one run back into wire dicts (what the detectors read)."""
    events = []
    for event_id, kind, agent, version, step, ts, parent, payload in rows:
        event = {
            "event_type": kind,
            "run_id": run_id,
            "agent_id": agent,
            "agent_version": version,
            "step_index": step,
            "timestamp": float(ts),
            "payload": payload,
            "parent_run_id": parent,
        }
        if event_id is not None:
            event["event_id"] = event_id
        events.append(event)
    return events
