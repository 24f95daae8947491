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

import functools
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.adapt import Loader
except ImportError as exc:  # pragma: no cover - depends on the environment
    from .common import POSTGRES_EXTRA

    raise ImportError(f"--db postgresql://... needs the PostgreSQL driver (psycopg 3): {POSTGRES_EXTRA}") from exc

from .. import _json
from ..schema import BadRequest, Batch
from .common import Row, StoreUnavailable, describe_target, translate_errors
from .migrations import migrate_postgres
from .sqlite import SQLiteStore

__all__ = ["PostgresStore", "connect_reader"]

_dumps = _json.dumps


class _Number(Loader):
    """``numeric`` (what ``sum()`` of integers gives) as an int or a float,
    not a Decimal, which JSON answers cannot hold."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        return int(text) if text.lstrip("-").isdigit() else float(text)


class _Row(tuple):  # type: ignore[type-arg]
    """A row read by position (``row[0]``, unpacking) or by column name
    (``row["status"]``, ``dict(row)``), as sqlite3.Row."""

    _names: tuple[str, ...]

    def keys(self) -> tuple[str, ...]:
        return self._names

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))
        return tuple.__getitem__(self, key)


def _rows(cursor: Any) -> Any:
    names = tuple(column.name for column in cursor.description or ())

    def make(values: Sequence[Any]) -> _Row:
        row = _Row(values)
        row._names = names
        return row

    return make


@functools.lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    """SQLite's ``?`` placeholders as psycopg's ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Result:
    """What ``execute`` returns: the rows, already fetched."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class _Session:
    """A connection that takes SQLite's SQL (``?`` placeholders), for the
    queries SQLiteStore's methods run."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> _Result:
        cursor = self.conn.execute(_placeholders(sql), list(args))
        rows = cursor.fetchall() if cursor.description else []
        return _Result(rows, cursor.rowcount)

    def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(_placeholders(sql), list(args))


class _Reader:
    """``store._reader()``: each statement on a pooled connection, in
    autocommit."""

    def __init__(self, pool: _Pool) -> None:
        self._pool = pool

    def execute(self, sql: str, args: Sequence[Any] = ()) -> _Result:
        with self._pool.connection() as conn:
            return _Session(conn).execute(sql, args)


class _Pool:
    """Up to ``size`` connections, made when first needed. A connection the
    server dropped is closed on return, and the next caller gets a new one,
    so the store recovers by itself when the server comes back."""

    def __init__(self, url: str, size: int, timeout: float, options: str = "") -> None:
        self.url = url
        self.options = options
        self.size = size
        self.timeout = timeout
        self._idle: list[Any] = []
        self._open = 0
        self._cond = threading.Condition()
        self._closed = False

    def _connect(self) -> Any:
        # A server that does not answer is a 503 within seconds, not a
        # request hanging for the operating system's TCP timeout.
        extra: dict[str, Any] = {"options": self.options} if self.options else {}
        conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5, row_factory=_rows,
                               application_name="dunetrace-collector", **extra)  # fmt: skip
        conn.adapters.register_loader("numeric", _Number)
        return conn

    @contextmanager
    def connection(self) -> Iterator[Any]:
        deadline = time.monotonic() + self.timeout
        conn = None
        with self._cond:
            while True:
                if self._closed:
                    raise psycopg.OperationalError("the store is closed")
                if self._idle:
                    conn = self._idle.pop()
                    break
                if self._open < self.size:
                    self._open += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise psycopg.OperationalError(f"no database connection free within {self.timeout:.0f}s")
                self._cond.wait(remaining)
        try:
            if conn is None:
                conn = self._connect()
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _give_back(self, conn: Any) -> None:
        broken = conn.closed or conn.broken
        healthy = not broken and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        dropped = [conn]
        with self._cond:
            if healthy and not self._closed:
                self._idle.append(conn)
                self._cond.notify()
                return
            if broken:
                # A server restart or failover drops every connection at once:
                # the idle ones are let go too, so the requests after this
                # one's 503 get new connections rather than one 503 each.
                dropped += self._idle
                self._idle = []
            self._open -= len(dropped)
            self._cond.notify_all()
        for each in dropped:
            each.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()


def connect_reader(url: str) -> _Reader:
    """One connection that reads with SQLite's SQL (``stored_rows``): the
    judge worker process's."""
    return _Reader(_Pool(url, 1, 30.0))


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
        raise BadRequest(field, "contains a string with the NUL character (U+0000), which the collector's"
                         " PostgreSQL database cannot store") from None  # fmt: skip


#: Conflicts between concurrent transactions that are resolved by running
#: the transaction again.
_RETRY = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)


@translate_errors
class PostgresStore(SQLiteStore):
    """The store in a PostgreSQL database, shared by collector processes."""

    engine = "postgresql"
    engine_errors: tuple[type[BaseException], ...] = (psycopg.Error,)
    #: How long a judge holds the runs it claimed, in seconds.
    judge_lease = 60.0

    def __init__(self, url: str, sync: str = "full", pool_size: int = 10, pool_timeout: float = 30.0) -> None:
        # SQLiteStore.__init__ opens a file: not called. What its inherited
        # methods use is set here.
        self.path = url
        self.keep_rows = False
        self._judge_db = None  # type: ignore[assignment]  # SQLite's; here _transaction ignores it
        # ``--sync normal``: as on SQLite, a commit survives the collector's
        # crash but not the database server's (PostgreSQL's asynchronous
        # commit: the last fraction of a second may be lost, never corrupted).
        options = "-c synchronous_commit=off" if sync == "normal" else ""
        self._pool = _Pool(url, pool_size, pool_timeout, options)
        self._reader_session = _Reader(self._pool)
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
            yield _Session(conn)

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
        # psycopg escapes them character by character, which took most of
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
                fresh = set(stored or ())
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
        ended: list[str] = []
        columns: list[list[Any]] = [[] for _ in range(13)]
        for run_id, (agent, version, parent, first, last, end_type, reason, error, steps, _) in live.items():
            values = (run_id, agent, version, parent, "ended" if end_type else "open", float(first), float(last), now, end_type,
                      reason, error, steps, len(by_run.get(run_id, ())))  # fmt: skip
            for column, value in zip(columns, values):
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
            )  # fmt: skip
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
            db = _Session(conn)
            saved: list[str] = []
            for run_id, signals in judged:
                found = status.get(run_id)
                if found is None or found[0] == "judged" or run_id in saved:
                    continue
                if signals:
                    db.executemany(
                        "INSERT INTO signals (run_id, agent_id, detector, severity, step_index, evidence, explanation,"
                        " created_at) VALUES (?,?,?,?,?,?,?,?)",
                        [
                            (run_id, s.get("agent_id") or found[1], s["detector"], s["severity"], s.get("step_index"),
                             _dumps(s.get("evidence") or {}), _dumps(s.get("explanation") or {}), now)
                            for s in signals
                        ],
                    )  # fmt: skip
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
