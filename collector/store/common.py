"""What both stores share: the stored row of an event, turning rows back into
wire events, and the interface the rest of the collector uses.

A store (``SQLiteStore``, ``PostgresStore``) has: ``ingest``/``ingest_batch``
(idempotent by ``event_id``), ``runs_to_judge``, ``save_judgements`` (a run is
judged once, however many processes try), the reads of the API
(``run``, ``runs``, ``agents``, ``signals``, ``deploys``, ``run_events``),
and the alert outbox (``outbox_add``, ``outbox_claim``, ``outbox_done``,
``outbox_retry``, ``outbox_pending``, ``outbox_next_due``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["Row", "StoreUnavailable", "is_postgres_url", "wire_events"]


class StoreUnavailable(Exception):
    """The database cannot be read or written now; the request may succeed
    later (the ingest API answers 503). The engine's own error is the
    ``__cause__``."""


#: An event as stored: schema.ROW_FIELDS, in that order.
Row = Sequence[Any]


def is_postgres_url(target: str) -> bool:
    """Whether ``--db`` names a PostgreSQL database rather than a SQLite file."""
    return target.startswith(("postgresql://", "postgres://"))


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
