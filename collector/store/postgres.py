"""Events, runs, signals, deploy markers and the alert outbox in PostgreSQL
(``dunetrace serve --db postgresql://...``), shared by several collector
processes, on one host or several behind a load balancer.

What several processes need, and how it is had:

- Ingest stays idempotent by ``event_id``: a batch records its event ids with
  ``INSERT ... ON CONFLICT DO NOTHING RETURNING``, in one order, so a batch
  posted to two processes at once is stored by whichever commits first and
  the other finds every id taken (it waits on the first's row locks).
- A run is judged once: a judge claims runs (``claim_runs``) with ``FOR
  UPDATE SKIP LOCKED`` and a lease in ``runs.judging_until``, so two
  processes never judge the same run together, and one that dies frees its
  runs when the lease ends. The judgement itself locks the run's row and
  skips a run already judged, so a run is judged once even past a lease.
- Alerts are written in the judgement's transaction and claimed by one
  process's worker at a time (``SKIP LOCKED``), then deleted when sent.
- The reads of the API are SQLiteStore's queries (written in SQL both
  engines speak), run through a connection that takes ``?`` placeholders.

The schema is migrated at start under an advisory lock (migrations.py).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .. import _json
from ..schema import BadRequest, Batch
from .common import Row, StoreUnavailable, describe_target, judge_lease_from_env, translate_errors
from .judgements import live_signal_rows
from .migrations import migrate_postgres

# psycopg through pgconn, which names the extra to install when it is missing.
from .pgconn import Pool, Reader, Session, connect_reader, psycopg
from .sqlite import SQLiteStore

__all__ = ["PostgresStore", "connect_reader"]

_dumps = _json.dumps
pg_errors = psycopg.errors


@contextmanager
def _nul_refused(field: str) -> Iterator[None]:
    """A string holding U+0000, which PostgreSQL's text cannot store, is the
    client's error (422), not the database's; the transaction is rolled
    back, so nothing was stored."""
    try:
        yield
    except psycopg.DataError as exc:
        # Refused by psycopg (text parameters) or by the server (binary ones).
        if "NUL" not in str(exc) and not isinstance(exc, pg_errors.CharacterNotInRepertoire):
            raise
        raise BadRequest(
            field,
            "contains a string with the NUL character (U+0000), which the collector's PostgreSQL database cannot store",
        ) from None


#: Conflicts between concurrent transactions that are resolved by running
#: the transaction again.
_RETRY = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)


@translate_errors
class PostgresStore(SQLiteStore):
    """The store in a PostgreSQL database, shared by collector processes."""

    engine = "postgresql"
    engine_errors: tuple[type[BaseException], ...] = (psycopg.Error,)
    #: How long a judge holds the runs it claimed, in seconds
    #: (``DUNETRACE_JUDGE_LEASE``): after a collector dies, its runs wait
    #: this long for another collector's sweep.
    judge_lease = 60.0

    def __init__(self, url: str, sync: str = "full", pool_size: int = 10, pool_timeout: float = 30.0) -> None:
        # SQLiteStore.__init__ opens a file: not called. What its inherited
        # methods use is set here.
        self.path = url
        self.keep_rows = False
        self.judge_lease = judge_lease_from_env(self.judge_lease)
        self._judge_db = None  # type: ignore[assignment]  # SQLite's; here _transaction ignores it
        # ``--sync normal``: as on SQLite, a commit survives the collector's
        # crash but not the database server's (PostgreSQL's asynchronous
        # commit: the last fraction of a second may be lost, never corrupted).
        options = "-c synchronous_commit=off" if sync == "normal" else ""
        self._pool = Pool(url, pool_size, pool_timeout, options)
        self._reader_session = Reader(self._pool)
        try:
            with self._pool.connection() as conn:
                #: The schema version after migrating (migrations.py).
                self.schema_version = migrate_postgres(conn)
        except psycopg.Error as exc:
            self._pool.close()
            raise StoreUnavailable(f"cannot open the database {describe_target(url)}: {exc}") from exc

    def close(self) -> None:
        self._pool.close()

    def checkpoint(self) -> None:
        """PostgreSQL checkpoints by itself."""

    # -- connections ----------------------------------------------------------

    def _reader(self) -> Any:
        return self._reader_session

    @contextmanager
    def _transaction(self, db: Any = None) -> Iterator[Any]:
        with self._pool.connection() as conn, conn.transaction():
            yield Session(conn)

    def _retried(self, work: Any) -> Any:
        """``work(conn)`` in a transaction, run again (up to 5 times) when
        it deadlocked with another process's."""
        for attempt in range(5):
            try:
                with self._pool.connection() as conn, conn.transaction():
                    return work(conn)
            except _RETRY:
                if attempt == 4:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    def check_writable(self) -> None:
        """For ``/health``: a transaction that writes and commits, as a batch
        would. The newest ``schema_version`` row is written back unchanged: a
        read-only server refuses it, a full one fails its commit."""
        with self._transaction() as db:
            db.execute(
                "UPDATE schema_version SET applied_at = applied_at"
                " WHERE version = (SELECT max(version) FROM schema_version)"
            )

    # -- writing --------------------------------------------------------------

    def ingest_batch(self, batch: Batch, batch_id: str) -> tuple[int, list[str]]:
        with _nul_refused("events"):
            result: tuple[int, list[str]] = self._retried(lambda conn: self._ingest(conn, batch, batch_id))
        return result

    @staticmethod
    def _ingest(conn: Any, batch: Batch, batch_id: str) -> tuple[int, list[str]]:
        now = time.time()
        runs = batch.runs
        if not runs:
            return 0, []
        # Arrays go in PostgreSQL's binary format (``%b``): in the text format
        # psycopg escapes them character by character, which takes most of
        # the time of a batch.
        # Rows are locked in one order (run ids, event ids sorted) by every
        # process, so two batches of the same runs wait for each other
        # instead of deadlocking.
        run_ids = sorted(runs)
        known = dict(conn.execute("SELECT run_id, status FROM runs WHERE run_id = ANY(%b)", (run_ids,)).fetchall())
        judged = {run_id for run_id, status in known.items() if status == "judged"}
        live = {run_id: runs[run_id] for run_id in run_ids if run_id not in judged}
        ids = [row[0] for run in live.values() for row in run[9] if row[0] is not None]
        fresh: set[str] | None = None
        if ids:
            unique = sorted(set(ids))
            # One row back: how many were new, and which only when not all.
            new, stored = conn.execute(
                "WITH added AS (INSERT INTO event_ids (event_id) SELECT id FROM unnest(%b::text[]) AS u(id)"
                " ORDER BY id ON CONFLICT DO NOTHING RETURNING event_id)"
                " SELECT count(*), CASE WHEN count(*) < %s THEN array_agg(event_id) END FROM added",
                (unique, len(unique)),
            ).fetchone()
            if new != len(ids):  # some were sent before, or twice in this batch
                fresh = set(unique) if new == len(unique) else set(stored or ())  # none new: NULL
        by_run: dict[str, list[Row]] = {}
        for run_id, run in live.items():
            if fresh is None:
                by_run[run_id] = run[9]
                continue
            rows = []
            for row in run[9]:
                if row[0] is None:
                    rows.append(row)
                elif row[0] in fresh:
                    fresh.discard(row[0])  # the first copy of an id only
                    rows.append(row)
            if rows:
                by_run[run_id] = rows
        if by_run:
            chunk_runs = list(by_run)
            conn.execute(
                "INSERT INTO event_chunks (run_id, batch_id, n, events)"
                " SELECT r, %s, n, e FROM unnest(%b::text[], %b::bigint[], %b::text[]) AS u(r, n, e)",
                (batch_id, chunk_runs, [len(by_run[r]) for r in chunk_runs], [_dumps(by_run[r]) for r in chunk_runs]),
            )
        # Signals the SDK found while the run goes on are shown now; the
        # run's judgement later stores its full set in their place.
        live_rows = live_signal_rows(by_run, now)
        if live_rows:
            Session(conn).executemany(
                "INSERT INTO signals (run_id, agent_id, detector, severity, step_index, evidence, explanation,"
                " created_at, live) VALUES (?,?,?,?,?,?,?,?,?)",
                [(*row[:8], True) for row in live_rows],
            )
        ended: list[str] = []
        columns: list[list[Any]] = [[] for _ in range(13)]
        for run_id, (agent, version, parent, first, last, end_type, reason, error, steps, _) in live.items():
            values = (
                run_id,
                agent,
                version,
                parent,
                "ended" if end_type else "open",
                float(first),
                float(last),
                now,
                end_type,
                reason,
                error,
                steps,
                len(by_run.get(run_id, ())),
            )
            for column, value in zip(columns, values, strict=False):
                column.append(value)
            if end_type:
                ended.append(run_id)
        if live:
            conn.execute(
                "INSERT INTO runs (run_id, agent_id, agent_version, parent_run_id, status, first_ts, last_ts,"
                " last_seen, end_type, exit_reason, error_type, total_steps, event_count)"
                " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::float8[],"
                " %b::float8[], %b::float8[], %b::text[], %b::text[], %b::text[], %b::bigint[], %b::bigint[])"
                " ON CONFLICT (run_id) DO UPDATE SET"
                " parent_run_id = coalesce(runs.parent_run_id, excluded.parent_run_id),"
                " first_ts = least(runs.first_ts, excluded.first_ts),"
                " last_ts = greatest(runs.last_ts, excluded.last_ts),"
                " last_seen = excluded.last_seen,"
                " status = CASE WHEN runs.status = 'judged' THEN 'judged' WHEN excluded.status = 'ended' THEN 'ended'"
                " ELSE runs.status END,"
                " end_type = coalesce(excluded.end_type, runs.end_type),"
                " exit_reason = coalesce(excluded.exit_reason, runs.exit_reason),"
                " error_type = coalesce(excluded.error_type, runs.error_type),"
                " total_steps = greatest(runs.total_steps, excluded.total_steps),"
                " event_count = runs.event_count + excluded.event_count",
                columns,
            )
        return sum(len(rows) for rows in by_run.values()), ended

    def release_evicted(self) -> None:
        """Nothing is kept in memory: every run is read back to be judged."""

    def take_rows(self, run_id: str) -> list[Row]:
        return self.run_rows(run_id)

    def add_deploy(self, agent_id: str, version: str, meta: dict[str, Any]) -> int:
        with _nul_refused("body"), self._transaction() as db:
            row = db.execute(
                "INSERT INTO deploys (agent_id, version, meta, at) VALUES (?,?,?,?) RETURNING id",
                (agent_id, version, _dumps(meta), time.time()),
            ).fetchone()
        return int(row[0])

    # -- judging --------------------------------------------------------------

    def runs_to_judge(self, silent_before: float) -> list[str]:
        """Runs ended but not judged, and open runs silent since
        ``silent_before``, that no process holds now."""
        rows = self._reader().execute(
            "SELECT run_id FROM runs WHERE (status = 'ended' OR (status = 'open' AND last_seen < ?))"
            " AND judging_until <= ? ORDER BY last_seen LIMIT 1000",
            (silent_before, time.time()),
        )
        return [row[0] for row in rows]

    def claim_runs(self, run_ids: list[str]) -> list[str]:
        """The runs of ``run_ids`` this process may judge now, held for
        ``judge_lease`` seconds: those not judged, not held by another
        process and not being claimed by one at this moment."""
        if not run_ids:
            return []
        now = time.time()

        def claim(conn: Any) -> set[str]:
            rows = conn.execute(
                "UPDATE runs SET judging_until = %s WHERE run_id IN (SELECT run_id FROM runs"
                " WHERE run_id = ANY(%s) AND status != 'judged' AND judging_until <= %s"
                " ORDER BY run_id FOR UPDATE SKIP LOCKED) RETURNING run_id",
                (now + self.judge_lease, sorted(set(run_ids)), now),
            ).fetchall()
            return {row[0] for row in rows}

        claimed: set[str] = self._retried(claim)
        return [run_id for run_id in dict.fromkeys(run_ids) if run_id in claimed]

    def save_judgements(self, judged: list[tuple[str, list[dict[str, Any]]]], alerts: Any = None) -> list[str]:
        """Several runs' judgements in one transaction; the run ids not
        judged before (by this process or another). Each run's row is
        locked first, so two processes judging one run store one judgement."""
        if not judged:
            return []

        def save(conn: Any) -> list[str]:
            now = time.time()
            ids = sorted({run_id for run_id, _ in judged})
            status = {
                row[0]: (row[1], row[2])
                for row in conn.execute(
                    "SELECT run_id, status, agent_id FROM runs WHERE run_id = ANY(%s) ORDER BY run_id FOR UPDATE",
                    (ids,),
                )
            }
            db = Session(conn)
            saved: list[str] = []
            for run_id, signals in judged:
                found = status.get(run_id)
                if found is None or found[0] == "judged" or run_id in saved:
                    continue
                # The judgement's full set replaces the live signals shown
                # while the run went on (it keeps their live mark).
                db.execute("DELETE FROM signals WHERE run_id = ? AND live", (run_id,))
                if signals:
                    db.executemany(
                        "INSERT INTO signals (run_id, agent_id, detector, severity, step_index, evidence, explanation,"
                        " created_at, live) VALUES (?,?,?,?,?,?,?,?,?)",
                        [
                            (
                                run_id,
                                s.get("agent_id") or found[1],
                                s["detector"],
                                s["severity"],
                                s.get("step_index"),
                                _dumps(s.get("evidence") or {}),
                                _dumps(s.get("explanation") or {}),
                                now,
                                bool(s.get("live")),
                            )
                            for s in signals
                        ],
                    )
                conn.execute(
                    "UPDATE runs SET status = 'judged', judged_at = %s, signal_count = %s, judging_until = 0"
                    " WHERE run_id = %s",
                    (now, len(signals), run_id),
                )
                saved.append(run_id)
                if alerts is not None:
                    self._outbox_insert(db, alerts(signals), now)  # type: ignore[arg-type]  # takes SQLite's SQL
            return saved

        result: list[str] = self._retried(save)
        return result

    # -- the alert outbox (alerts.py) -----------------------------------------

    def outbox_claim(self, destination: str, now: float, lease: float, limit: int) -> list[dict[str, Any]]:
        """Up to ``limit`` due deliveries, claimed for ``lease`` seconds;
        rows another process is claiming at this moment are skipped."""
        with self._transaction() as db:
            rows = db.execute(
                "UPDATE alert_outbox SET claimed_until = ? WHERE id IN (SELECT id FROM alert_outbox"
                " WHERE destination = ? AND due <= ? AND claimed_until <= ? ORDER BY due, id LIMIT ?"
                " FOR UPDATE SKIP LOCKED) RETURNING id, delivery_id, body, label, attempts",
                (now + lease, destination, now, now, limit),
            ).fetchall()
        return [dict(row) for row in rows]

    def outbox_next_due(self, destination: str) -> float | None:
        row = (
            self._reader()
            .execute("SELECT min(greatest(due, claimed_until)) FROM alert_outbox WHERE destination = ?", (destination,))
            .fetchone()
        )
        return None if row[0] is None else float(row[0])
