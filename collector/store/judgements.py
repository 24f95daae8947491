"""Signals and judgements: the live signals a batch carries (stored as it
arrives), which runs wait to be judged and which this process may judge,
and a run's judgement (its full set of signals, with the alert outbox rows
for them, in one transaction). Part of ``SQLiteStore``; the PostgreSQL store
replaces the parts that must work across processes (claims, leases).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from .. import _json
from .common import Row, translate_errors

__all__ = ["AlertRows", "Judgements", "live_signal_rows"]

#: Outbox rows for a run's signals (AlertDispatcher.rows_for).
AlertRows = Callable[[list[dict[str, Any]]], Iterable[Any]]

_dumps = _json.dumps

_INSERT_SIGNAL = (
    "INSERT INTO signals (run_id, agent_id, detector, severity, step_index, evidence, explanation, created_at, live)"
    " VALUES (?,?,?,?,?,?,?,?,?)"
)


def live_signal_rows(by_run: dict[str, list[Row]], now: float) -> list[tuple[Any, ...]]:
    """Signal rows for the live ``external.signal`` events among a batch's
    new rows (one check of the event type per row)."""
    out: list[tuple[Any, ...]] = []
    for run_id, rows in by_run.items():
        if any(row[1] == "external.signal" for row in rows):
            from ..detectors import live_signals_in_rows

            for s in live_signals_in_rows(run_id, rows):
                out.append(
                    (
                        run_id,
                        s.agent_id,
                        s.detector,
                        s.severity,
                        s.step_index,
                        _dumps(s.evidence),
                        _dumps(s.explanation),
                        now,
                        1,
                    )
                )
    return out


@translate_errors
class Judgements:
    """Which runs to judge, and storing their judgements. The store class
    gives ``_reader()``, ``_transaction()``, ``_judge_db``, the alert
    outbox's ``_outbox_insert`` and the run cache's ``_forget``."""

    _judge_db: Any
    _reader: Callable[[], Any]
    _transaction: Callable[..., Any]
    _outbox_insert: Callable[..., int]
    _forget: Callable[[list[str]], None]

    def runs_to_judge(self, silent_before: float) -> list[str]:
        """Runs whose terminal event arrived but were not judged (a restart
        in between), and open runs silent since ``silent_before``."""
        rows = self._reader().execute(
            "SELECT run_id FROM runs WHERE status = 'ended' OR (status = 'open' AND last_seen < ?)"
            " ORDER BY last_seen LIMIT 1000",
            (silent_before,),
        )
        return [row[0] for row in rows]

    def claim_runs(self, run_ids: list[str]) -> list[str]:
        """The runs of ``run_ids`` this process may judge now. One process
        owns a SQLite file: all of them (``save_judgements`` skips a run
        judged meanwhile)."""
        return list(run_ids)

    def save_judgement(self, run_id: str, signals: list[dict[str, Any]]) -> bool:
        """Store a run's signals and mark it judged; False when it already was."""
        return bool(self.save_judgements([(run_id, signals)]))

    def save_judgements(
        self, judged: list[tuple[str, list[dict[str, Any]]]], alerts: AlertRows | None = None
    ) -> list[str]:
        """Several runs' judgements in one transaction; returns the run ids
        that were not judged before. ``alerts(signals)`` gives the outbox rows
        of a newly judged run's signals, stored in the same transaction."""
        now = time.time()
        saved: list[str] = []
        with self._transaction(self._judge_db) as db:
            for run_id, signals in judged:
                row = db.execute("SELECT status, agent_id FROM runs WHERE run_id = ?", (run_id,)).fetchone()
                if row is None or row["status"] == "judged":
                    continue
                db.execute("DELETE FROM signals WHERE run_id = ? AND live = 1", (run_id,))
                db.executemany(
                    _INSERT_SIGNAL,
                    [
                        (
                            run_id,
                            s.get("agent_id") or row["agent_id"],
                            s["detector"],
                            s["severity"],
                            s.get("step_index"),
                            _dumps(s.get("evidence") or {}),
                            _dumps(s.get("explanation") or {}),
                            now,
                            1 if s.get("live") else 0,
                        )
                        for s in signals
                    ],
                )
                db.execute(
                    "UPDATE runs SET status = 'judged', judged_at = ?, signal_count = ? WHERE run_id = ?",
                    (now, len(signals), run_id),
                )
                saved.append(run_id)
                if alerts is not None:
                    self._outbox_insert(db, alerts(signals), now)
        self._forget(saved)
        return saved
