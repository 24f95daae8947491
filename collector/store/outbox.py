"""The alert outbox: deliveries to Slack or a webhook waiting to be sent
(alerts.py), claimed for a lease by the worker that sends them, retried
with a later due time, deleted once sent. Written on the judge's connection:
a judgement's alerts are stored in its own transaction. Part of both stores.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Any

from .common import translate_errors

__all__ = ["AlertOutbox"]


@translate_errors
class AlertOutbox:
    """The outbox of a store; the store class gives ``_reader()``,
    ``_transaction()`` and ``_judge_db``."""

    _judge_db: Any
    _reader: Callable[[], Any]
    _transaction: Callable[..., Any]

    @staticmethod
    def _outbox_insert(db: sqlite3.Connection, rows: Iterable[Any], now: float) -> int:
        values = [(dest, delivery_id, body, label, now, now) for dest, delivery_id, body, label in rows]
        db.executemany(
            "INSERT INTO alert_outbox (destination, delivery_id, body, label, due, created_at) VALUES (?,?,?,?,?,?)",
            values,
        )
        return len(values)

    def outbox_add(self, rows: Iterable[Any]) -> int:
        with self._transaction(self._judge_db) as db:
            return self._outbox_insert(db, rows, time.time())

    def outbox_claim(self, destination: str, now: float, lease: float, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` due deliveries, claimed for ``lease`` seconds."""
        with self._transaction(self._judge_db) as db:
            rows = db.execute(
                "UPDATE alert_outbox SET claimed_until = ? WHERE id IN (SELECT id FROM alert_outbox"
                " WHERE destination = ? AND due <= ? AND claimed_until <= ? ORDER BY due, id LIMIT ?)"
                " RETURNING id, delivery_id, body, label, attempts",
                (now + lease, destination, now, now, limit),
            ).fetchall()
        return [dict(row) for row in rows]

    def outbox_done(self, row_id: int) -> None:
        with self._transaction(self._judge_db) as db:
            db.execute("DELETE FROM alert_outbox WHERE id = ?", (row_id,))

    def outbox_retry(self, row_id: int, attempts: int, due: float) -> None:
        with self._transaction(self._judge_db) as db:
            db.execute(
                "UPDATE alert_outbox SET attempts = ?, due = ?, claimed_until = 0 WHERE id = ?", (attempts, due, row_id)
            )

    def outbox_pending(self, destination: str | None = None) -> int:
        clause, args = (" WHERE destination = ?", (destination,)) if destination else ("", ())
        return int(self._reader().execute(f"SELECT count(*) FROM alert_outbox{clause}", args).fetchone()[0])

    def outbox_next_due(self, destination: str) -> float | None:
        row = (
            self._reader()
            .execute("SELECT min(max(due, claimed_until)) FROM alert_outbox WHERE destination = ?", (destination,))
            .fetchone()
        )
        return None if row[0] is None else float(row[0])

    def outbox_clear(self) -> int:
        with self._transaction(self._judge_db) as db:
            return db.execute("DELETE FROM alert_outbox").rowcount
