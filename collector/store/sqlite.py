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

This module holds the connections and the writes of a batch; the store's
other parts are mixed in: the rows kept for judging (run_cache.py), the
reads (reads.py), judgements (judgements.py) and the alert outbox
(outbox.py).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from .. import _json
from ..schema import Batch, read_events
from .common import translate_errors
from .judgements import _INSERT_SIGNAL, Judgements, live_signal_rows
from .migrations import migrate_sqlite
from .outbox import AlertOutbox
from .reads import StoreReads, stored_rows
from .run_cache import RunCache

__all__ = ["SQLiteStore", "connect_reader", "stored_rows"]

logger = logging.getLogger("dunetrace.collector")

_dumps = _json.dumps


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
class SQLiteStore(RunCache, StoreReads, Judgements, AlertOutbox):
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
        self._init_cache()
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

    def add_deploy(self, agent_id: str, version: str, meta: dict[str, Any]) -> int:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO deploys (agent_id, version, meta, at) VALUES (?,?,?,?)",
                (agent_id, version, _dumps(meta), time.time()),
            )
            return int(cursor.lastrowid or 0)
