"""Events, runs, signals and deploy markers in one SQLite file (WAL).

One connection writes, under a lock; each reading thread has its own
connection, which WAL lets read while the writer writes. A batch is one
transaction, committed with ``synchronous=FULL`` before the ingest API
answers 202: a 202 means the batch is on disk.

A run is ``open`` until its terminal event arrives (``ended``) and then
``judged`` once; events of a judged run are ignored, as the contract says.
Re-sent events are recognised by their ``event_id``.

Events are written a run's share of a batch per row (``event_chunks``),
with their ids in ``event_ids``; the ``events`` view shows them one per
row for SQL written by hand.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from .. import _json
from ..schema import Batch, read_events
from .common import Row, translate_errors, wire_events
from .migrations import migrate_sqlite

__all__ = ["SQLiteStore", "connect_reader", "stored_rows"]

logger = logging.getLogger("dunetrace.collector")

#: Outbox rows for a run's signals (AlertDispatcher.rows_for).
AlertRows = Callable[[list[dict[str, Any]]], Iterable[Any]]

_RUN_COLUMNS = (
    "run_id, agent_id, agent_version, parent_run_id, status, first_ts, last_ts, last_seen, end_type, "
    "exit_reason, error_type, total_steps, event_count, signal_count, judged_at"
)

_dumps = _json.dumps
_loads = _json.loads


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


def stored_rows(db: sqlite3.Connection, run_id: str) -> list[Row]:
    """A run's events as stored rows, in arrival order, read with ``db``."""
    chunks = db.execute("SELECT events FROM event_chunks WHERE run_id = ? ORDER BY seq", (run_id,))
    return [row for (chunk,) in chunks for row in _loads(chunk)]


def connect_reader(path: str) -> sqlite3.Connection:
    """A connection that only reads (WAL lets it read while one writes)."""
    conn = _connect(path)
    conn.execute("PRAGMA query_only=1")
    return conn


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout=30000")
    # Run ids and event ids land all over the indexes: with SQLite's default
    # 2 MB page cache every insert past a few hundred thousand events reads
    # pages back from the OS, and ingest slows down as the file grows.
    conn.execute("PRAGMA cache_size=-65536")
    return conn


@translate_errors
class SQLiteStore:
    """The store in one SQLite file (the default).

    Its read queries are written in SQL that PostgreSQL also speaks, with
    ``?`` placeholders: the PostgreSQL store (postgres.py) runs them as they
    are."""

    engine = "sqlite"
    #: What the store reports as ``StoreUnavailable`` (common.py).
    engine_errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def __init__(self, path: str, sync: str = "full") -> None:
        self.path = path
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._cache: dict[str, list[Row]] = {}
        self._cached = 0
        self._cache_lock = threading.Lock()
        #: Runs evicted from the cache, not yet freed (see release_evicted).
        self._evicted: list[list[Row]] = []
        #: Events kept in memory for runs not yet judged, at most (about
        #: 600 bytes each). Under a steady stream the judge lags by up to
        #: ``judge_max_delay``: at 50k events/s that is 50k events, which
        #: should be judged from here, not read back from the file.
        self.cache_limit = 100_000
        #: False when runs are judged in another process, which reads them
        #: from the file: then nothing is kept here.
        self.keep_rows = True
        self._db = _connect(path)
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: the WAL is synced at every commit, so a 202 survives a power
        # cut, not only a crash of this process (which NORMAL also survives).
        self._db.execute("PRAGMA synchronous=FULL" if sync == "full" else "PRAGMA synchronous=NORMAL")
        # Copying the WAL back into the file (a checkpoint) takes tens of
        # milliseconds to a few hundred: done by the ingest connection, the
        # batch that happens to cross the threshold would wait for it. A
        # thread of the store does it instead (see _checkpoints); the ingest
        # connection only steps in if that thread falls far behind.
        self._db.execute("PRAGMA wal_autocheckpoint=50000")
        self._db.execute("PRAGMA journal_size_limit=67108864")
        #: The schema version after migrating (migrations.py).
        self.schema_version = migrate_sqlite(self._db)
        # One collector process owns a SQLite file: a delivery claimed by a
        # process that stopped is free again at once.
        self._db.execute("UPDATE alert_outbox SET claimed_until = 0 WHERE claimed_until > 0")
        # Judgements are derived from stored events: one lost to a power cut
        # leaves its run 'ended', and it is judged again at the next start.
        # So they are committed without waiting for the disk, which halves
        # the syncs per second under load.
        self._judge_db = _connect(path)
        self._judge_db.execute("PRAGMA synchronous=NORMAL")
        # The checkpoint interval is per connection: only the ingest one
        # checkpoints, else every judgement would copy the whole WAL back.
        self._judge_db.execute("PRAGMA wal_autocheckpoint=0")
        self._checkpoint_db = _connect(path)
        self._checkpoint_db.execute("PRAGMA synchronous=FULL" if sync == "full" else "PRAGMA synchronous=NORMAL")
        self._checkpoint_db.execute("PRAGMA wal_autocheckpoint=0")
        #: Bytes of events committed since the last checkpoint (roughly).
        self._unchecked = 0
        self._closing = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoints, name="dunetrace-checkpoint", daemon=True)
        self._checkpointer.start()

    #: A checkpoint runs once this many bytes of events were committed
    #: since the last (or every few seconds when anything was). A batch
    #: touches pages all over the indexes; checkpointing every ~16 MB writes
    #: each such page back once for many batches rather than once per batch.
    checkpoint_bytes = 16 * 1024 * 1024

    def _checkpoints(self) -> None:
        idle = 0
        while not self._closing.wait(0.1):
            idle += 1
            if self._unchecked >= self.checkpoint_bytes or (self._unchecked and idle >= 30):
                idle = 0
                self.checkpoint()

    def checkpoint(self) -> None:
        """Copy the WAL back into the database file, in two passes.

        The first (PASSIVE) copies the bulk without waiting for readers or
        the writer: the ingest goes on meanwhile. Under a steady stream of
        batches that pass never ends with the WAL fully copied (batches
        committed during it are left over), and SQLite starts the WAL over
        only after a complete checkpoint, so the file grew for ever and
        every commit appended to it; syncing an append costs about twice
        as much as syncing a rewrite of a file of settled size (ext4). The
        second pass copies the frames left over while holding the write
        lock, so the next commit starts the WAL over from its beginning.
        That pass holds up ingest for about 20-30 ms, mostly syncing the
        database file, once per checkpoint (every ~16 MB of events, a few
        hundred batches); the cheaper sync saves ~0.6 ms on every batch.
        """
        self._unchecked = 0
        try:
            self._checkpoint_db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            with self._write_lock:
                self._checkpoint_db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # e.g. the disk is full: the next try may work; ingest goes on
            logger.warning("dunetrace collector: checkpoint failed: %r", exc)

    def close(self) -> None:
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._closing.set()
        if self._checkpointer is not threading.current_thread():
            self._checkpointer.join(5)
        with self._write_lock:
            self._db.close()
            self._judge_db.close()
            self._checkpoint_db.close()

    # -- connections ----------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_reader(self.path)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def _transaction(self, db: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        with self._write_lock:
            db = db or self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def ping(self) -> bool:
        self._reader().execute("SELECT 1").fetchone()
        return True

    # -- writing --------------------------------------------------------------

    def ingest(self, events: list[dict[str, Any]], batch_id: str) -> tuple[int, list[str]]:
        """Store one batch of events in one transaction. Returns (number of
        events newly stored, run ids whose terminal event arrived). Raises
        ``BadRequest`` for an event the contract refuses."""
        return self.ingest_batch(read_events(events), batch_id)

    def ingest_batch(self, batch: Batch, batch_id: str) -> tuple[int, list[str]]:
        """``ingest`` for a batch already checked and grouped by run (the
        ingest API does both as it decodes the body)."""
        now = time.time()
        runs = batch.runs
        # The lock spans the commit and the in-memory copy, so two batches of
        # one run are remembered in the order they were stored.
        with self._write_lock:
            with self._transaction() as db:
                known = self._known(db, runs)
                judged = {run_id for run_id, status in known.items() if status == "judged"}
                live = {run_id: run for run_id, run in runs.items() if run_id not in judged} if judged else runs
                ids = [row[0] for run in live.values() for row in run[9] if row[0] is not None] if judged else batch.ids
                fresh = self._new_ids(db, ids)
                if fresh is None:  # the usual case: every event is new
                    by_run = {run_id: run[9] for run_id, run in live.items()}
                else:  # some were sent before: keep the first copy of each new one
                    by_run = {}
                    for run_id, run in live.items():
                        rows = []
                        for row in run[9]:
                            if row[0] is None:
                                rows.append(row)
                            elif row[0] in fresh:
                                fresh.discard(row[0])
                                rows.append(row)
                        if rows:
                            by_run[run_id] = rows
                chunks = [(run_id, batch_id, len(rows), _dumps(rows)) for run_id, rows in by_run.items()]
                db.executemany("INSERT INTO event_chunks (run_id, batch_id, n, events) VALUES (?,?,?,?)", chunks)
                self._unchecked += sum(len(chunk[3]) for chunk in chunks)
                # Signals the SDK found while the run goes on are shown now;
                # the run's judgement later stores its full set in their place.
                live_rows = live_signal_rows(by_run, now)
                if live_rows:
                    db.executemany(_INSERT_SIGNAL, live_rows)
                ended: list[str] = []
                upserts = []
                for run_id, (agent, version, parent, first, last, end_type, reason, error, steps, _) in live.items():
                    upserts.append(
                        (
                            run_id,
                            agent,
                            version,
                            parent,
                            "ended" if end_type else "open",
                            first,
                            last,
                            now,
                            end_type,
                            reason,
                            error,
                            steps,
                            len(by_run.get(run_id, ())),
                        )
                    )
                    if end_type:
                        ended.append(run_id)
                db.executemany(
                    "INSERT INTO runs (run_id, agent_id, agent_version, parent_run_id, status, first_ts, last_ts,"
                    " last_seen, end_type, exit_reason, error_type, total_steps, event_count)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)"
                    " ON CONFLICT(run_id) DO UPDATE SET"
                    " parent_run_id = coalesce(runs.parent_run_id, excluded.parent_run_id),"
                    " first_ts = min(runs.first_ts, excluded.first_ts),"
                    " last_ts = max(runs.last_ts, excluded.last_ts),"
                    " last_seen = excluded.last_seen,"
                    " status = CASE WHEN runs.status = 'judged' THEN 'judged'"
                    " WHEN excluded.status = 'ended' THEN 'ended'"
                    " ELSE runs.status END,"
                    " end_type = coalesce(excluded.end_type, runs.end_type),"
                    " exit_reason = coalesce(excluded.exit_reason, runs.exit_reason),"
                    " error_type = coalesce(excluded.error_type, runs.error_type),"
                    " total_steps = max(runs.total_steps, excluded.total_steps),"
                    " event_count = runs.event_count + excluded.event_count",
                    upserts,
                )
            if self.keep_rows:
                self._remember({run_id: run[9] for run_id, run in live.items()}, known, fresh is None)
        return sum(len(rows) for rows in by_run.values()), ended

    @staticmethod
    def _new_ids(db: sqlite3.Connection, ids: list[str]) -> set[str] | None:
        """Record the event ids not stored before. None when that is all of
        them (no event was sent before, none twice in the batch); else the
        set of ids stored now, each for the first event that carries it."""
        if not ids:
            return None
        listed = _dumps(ids)
        if "\\u0000" in listed:
            # json_each ends a string at U+0000 ("a\0b" and "a\0c" would both
            # be "a"): ids holding it are bound one by one instead.
            return SQLiteStore._new_ids_bound(db, ids)
        # The usual case, no event seen before: the ids go in with one
        # statement (json_each unrolls them inside SQLite), not 500.
        db.execute("SAVEPOINT event_ids")
        before = db.total_changes
        db.execute("INSERT OR IGNORE INTO event_ids (event_id) SELECT value FROM json_each(?)", (listed,))
        if db.total_changes - before == len(ids):
            db.execute("RELEASE event_ids")
            return None
        # Some were re-sent: find which.
        db.execute("ROLLBACK TO event_ids")
        db.execute("RELEASE event_ids")
        seen = {
            row[0]
            for row in db.execute(
                "SELECT event_id FROM event_ids WHERE event_id IN (SELECT value FROM json_each(?))", (_dumps(ids),)
            )
        }
        fresh = set(ids) - seen
        if fresh:
            db.execute("INSERT INTO event_ids (event_id) SELECT value FROM json_each(?)", (_dumps(sorted(fresh)),))
        return fresh

    @staticmethod
    def _new_ids_bound(db: sqlite3.Connection, ids: list[str]) -> set[str] | None:
        """``_new_ids`` with each id a parameter of its own (slower, exact
        for any string)."""
        fresh: set[str] = set()
        for event_id in ids:
            if event_id not in fresh:
                before = db.total_changes
                db.execute("INSERT OR IGNORE INTO event_ids (event_id) VALUES (?)", (event_id,))
                if db.total_changes > before:
                    fresh.add(event_id)
        return None if len(fresh) == len(ids) else fresh

    @staticmethod
    def _known(db: sqlite3.Connection, runs: Iterable[str]) -> dict[str, str]:
        """Status of the runs already stored."""
        ids = list(runs)
        known: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            known.update(db.execute(f"SELECT run_id, status FROM runs WHERE run_id IN ({marks})", chunk).fetchall())
        return known

    def _remember(self, by_run: dict[str, list[Row]], known: dict[str, str], exact: bool) -> None:
        """Keep the rows of runs this process saw from their first event,
        so judging them needs no reading back. Called under the write lock,
        after the commit."""
        with self._cache_lock:
            # Freed here at the latest, so at most one batch's evictions wait.
            self._evicted = []
            cache = self._cache
            for run_id, new in by_run.items():
                if not exact:  # which of them were re-sent copies is not known here
                    self._cached -= len(cache.pop(run_id, ()))
                elif run_id not in known:
                    cache[run_id] = new
                    self._cached += len(new)
                elif run_id in cache:
                    cache[run_id].extend(new)
                    self._cached += len(new)
            while self._cached > self.cache_limit and cache:
                oldest = next(iter(cache))  # the judge reads evicted runs back from the file
                evicted = cache.pop(oldest)
                self._cached -= len(evicted)
                # Freeing a run's events (hundreds of rows) takes a while;
                # the ingest API does it after its answer is sent.
                self._evicted.append(evicted)

    def release_evicted(self) -> None:
        """Free the events evicted by the last batch (the ingest API calls
        it once its 202 is sent, off the client's wait)."""
        with self._cache_lock:
            evicted, self._evicted = self._evicted, []
        del evicted

    def take_rows(self, run_id: str) -> list[Row]:
        """A run's events as rows, in arrival order, for judging it: from
        memory when this process saw the whole run, else from the file."""
        with self._cache_lock:
            cached = self._cache.pop(run_id, None)
            if cached is not None:
                self._cached -= len(cached)
                return cached
        return self.run_rows(run_id)

    def add_deploy(self, agent_id: str, version: str, meta: dict[str, Any]) -> int:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO deploys (agent_id, version, meta, at) VALUES (?,?,?,?)",
                (agent_id, version, _dumps(meta), time.time()),
            )
            return int(cursor.lastrowid or 0)

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
        with self._cache_lock:
            for run_id in saved:
                self._cached -= len(self._cache.pop(run_id, ()))
        return saved

    # -- the alert outbox (alerts.py) -----------------------------------------

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

    # -- reading --------------------------------------------------------------

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
