"""What the store answers: a run's events (for the judge and the run page),
the runs, agents, signals and deploy markers the dashboard's JSON API and
``dunetrace runs`` list. The queries are written in SQL that SQLite and
PostgreSQL both speak, with ``?`` placeholders, and run on the connection
``_reader()`` gives, so the PostgreSQL store runs them as they are. Part of
both stores.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from .. import _json
from .common import Row, translate_errors, wire_events

__all__ = ["StoreReads", "stored_rows"]

_RUN_COLUMNS = (
    "run_id, agent_id, agent_version, parent_run_id, status, first_ts, last_ts, last_seen, end_type, "
    "exit_reason, error_type, total_steps, event_count, signal_count, judged_at"
)

_loads = _json.loads


def stored_rows(db: sqlite3.Connection, run_id: str) -> list[Row]:
    """A run's events as stored rows, in arrival order, read with ``db``."""
    chunks = db.execute("SELECT events FROM event_chunks WHERE run_id = ? ORDER BY seq", (run_id,))
    return [row for (chunk,) in chunks for row in _loads(chunk)]


@translate_errors
class StoreReads:
    """The read queries of a store; the store class gives ``_reader()``."""

    #: The connection reads go through: per thread on SQLite, pooled on PostgreSQL.
    _reader: Callable[[], Any]

    def run_rows(self, run_id: str) -> list[Row]:
        """A run's events as stored rows, in arrival order."""
        return stored_rows(self._reader(), run_id)

    def run_events(self, run_id: str) -> list[dict[str, Any]]:
        """A run's events as wire dicts, in arrival order."""
        return wire_events(run_id, self.run_rows(run_id))

    def prior_step_counts(self, agent_id: str, before_run: str, limit: int = 500) -> list[int]:
        rows = self._reader().execute(
            "SELECT total_steps FROM runs WHERE agent_id = ? AND status = 'judged' AND run_id != ?"
            " ORDER BY judged_at DESC LIMIT ?",
            (agent_id, before_run, limit),
        )
        return [row[0] for row in rows]

    def run(self, run_id: str) -> dict[str, Any] | None:
        row = self._reader().execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return dict(row) if row is not None else None

    def agents(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        db = self._reader()
        total = db.execute("SELECT count(DISTINCT agent_id) FROM runs").fetchone()[0]
        rows = db.execute(
            "SELECT agent_id, count(*) AS runs, sum(signal_count) AS signals,"
            " sum(CASE WHEN status != 'judged' THEN 1 ELSE 0 END) AS open_runs, max(last_seen) AS last_seen,"
            " (SELECT agent_version FROM runs r2 WHERE r2.agent_id = runs.agent_id"
            "  ORDER BY last_seen DESC LIMIT 1) AS agent_version"
            " FROM runs GROUP BY agent_id ORDER BY max(last_seen) DESC, agent_id LIMIT ? OFFSET ?",
            (limit, offset),
        )
        return [dict(r) for r in rows], total

    def runs(
        self, agent_id: str | None, with_signals: bool | None, limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        where, args = [], []
        if agent_id is not None:
            where.append("agent_id = ?")
            args.append(agent_id)
        if with_signals is True:
            where.append("signal_count > 0")
        elif with_signals is False:
            where.append("signal_count = 0")
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        db = self._reader()
        total = db.execute(f"SELECT count(*) FROM runs{clause}", args).fetchone()[0]
        rows = db.execute(
            f"SELECT {_RUN_COLUMNS} FROM runs{clause} ORDER BY last_seen DESC, run_id LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        return [dict(r) for r in rows], total

    def signals(
        self,
        *,
        agent_id: str | None = None,
        run_id: str | None = None,
        severity: str | None = None,
        detector: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        where, args = [], []
        for column, value in (
            ("agent_id", agent_id),
            ("run_id", run_id),
            ("severity", severity),
            ("detector", detector),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        db = self._reader()
        total = db.execute(f"SELECT count(*) FROM signals{clause}", args).fetchone()[0]
        rows = db.execute(
            "SELECT id, run_id, agent_id, detector, severity, step_index, evidence, explanation, created_at, live"
            f" FROM signals{clause} ORDER BY id DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        items = []
        for r in rows:
            item = dict(r)
            item["evidence"] = _loads(item["evidence"])
            item["explanation"] = _loads(item["explanation"])
            item["live"] = bool(item["live"])
            items.append(item)
        return items, total

    def deploys(self, agent_id: str | None, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        clause, args = (" WHERE agent_id = ?", [agent_id]) if agent_id is not None else ("", [])
        db = self._reader()
        total = db.execute(f"SELECT count(*) FROM deploys{clause}", args).fetchone()[0]
        rows = db.execute(
            f"SELECT id, agent_id, version, meta, at FROM deploys{clause} ORDER BY at DESC, id DESC LIMIT ? OFFSET ?",
            [*args, limit, offset],
        )
        items = []
        for r in rows:
            item = dict(r)
            item["meta"] = _loads(item["meta"])
            items.append(item)
        return items, total

    def count_events(self) -> int:
        return int(self._reader().execute("SELECT coalesce(sum(n), 0) FROM event_chunks").fetchone()[0])
