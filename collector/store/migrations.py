"""The collector's schema, versioned: numbered migration steps for SQLite and
for PostgreSQL, and the code that applies the ones a database lacks.

A database records the steps it has in ``schema_version``. A SQLite file
from before versioning has no such table: step 1 (written with ``IF NOT
EXISTS``) finds its tables in place and only moves the oldest layout (one
row per event) to chunks; later steps add what it lacks. Steps only ever
get added at the end; a shipped step is never edited.

On PostgreSQL several collector processes may start together: the steps
run under an advisory lock, so one of them migrates and the others wait.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

__all__ = ["POSTGRES_STEPS", "SQLITE_STEPS", "migrate_postgres", "migrate_sqlite"]

SCHEMA = """
-- Events are stored a batch's run at a time: one row holds the events of
-- one run that arrived in one batch, as a JSON array of
-- [event_id, event_type, agent_id, agent_version, step_index, ts,
--  parent_run_id, payload]. At 500 events a batch that
-- is a handful of rows and index entries instead of 500 rows and 1,000
-- index entries, which made most of the collector's time per batch.
CREATE TABLE IF NOT EXISTS event_chunks (
    seq INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    events TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS event_chunks_run ON event_chunks(run_id, seq);
-- Event ids already stored, so a re-sent event is recognised: a table that
-- is its own index (no rowid), one B-tree insert per event.
CREATE TABLE IF NOT EXISTS event_ids (event_id TEXT PRIMARY KEY) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    parent_run_id TEXT,
    status TEXT NOT NULL DEFAULT 'open',
    first_ts REAL NOT NULL,
    last_ts REAL NOT NULL,
    last_seen REAL NOT NULL,
    end_type TEXT,
    exit_reason TEXT,
    error_type TEXT,
    total_steps INTEGER NOT NULL DEFAULT 0,
    event_count INTEGER NOT NULL DEFAULT 0,
    signal_count INTEGER NOT NULL DEFAULT 0,
    judged_at REAL
);
CREATE INDEX IF NOT EXISTS runs_agent ON runs(agent_id, last_seen);
CREATE INDEX IF NOT EXISTS runs_recent ON runs(last_seen);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status, last_seen);
CREATE INDEX IF NOT EXISTS runs_judged ON runs(agent_id, judged_at) WHERE status = 'judged';

CREATE TABLE IF NOT EXISTS signals (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    detector TEXT NOT NULL,
    severity TEXT NOT NULL,
    step_index INTEGER,
    evidence TEXT NOT NULL,
    explanation TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS signals_agent ON signals(agent_id, id);
CREATE INDEX IF NOT EXISTS signals_run ON signals(run_id);

CREATE TABLE IF NOT EXISTS deploys (
    id INTEGER PRIMARY KEY,
    agent_id TEXT NOT NULL,
    version TEXT NOT NULL,
    meta TEXT NOT NULL,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS deploys_agent ON deploys(agent_id, at);
"""

#: One event per row, for SQL written by hand (``sqlite3 dunetrace.db``) and
#: the tests: the chunks unrolled. Order within a run is ``seq, pos``.
EVENTS_VIEW = """
CREATE VIEW IF NOT EXISTS events AS
SELECT c.seq AS seq, j.key AS pos, json_extract(j.value, '$[0]') AS event_id, c.run_id AS run_id,
       json_extract(j.value, '$[2]') AS agent_id, json_extract(j.value, '$[3]') AS agent_version,
       json_extract(j.value, '$[1]') AS event_type, json_extract(j.value, '$[4]') AS step_index,
       json_extract(j.value, '$[5]') AS ts, json_extract(j.value, '$[6]') AS parent_run_id,
       json_extract(j.value, '$[7]') AS payload, c.batch_id AS batch_id
FROM event_chunks AS c, json_each(c.events) AS j;
"""

#: An old file (one row per event) is moved to chunks of one event at start.
_MIGRATE = """
INSERT OR IGNORE INTO event_ids (event_id) SELECT event_id FROM events WHERE event_id IS NOT NULL;
INSERT INTO event_chunks (run_id, batch_id, n, events)
    SELECT run_id, batch_id, 1, json_array(json_array(event_id, event_type, agent_id, agent_version, step_index, ts,
                                                      parent_run_id, json(payload)))
    FROM events ORDER BY seq;
DROP TABLE events;
"""


#: Alert deliveries not yet sent (alerts.py): one row per signal and
#: destination, deleted once delivered or given up.
OUTBOX = """
CREATE TABLE IF NOT EXISTS alert_outbox (
    id INTEGER PRIMARY KEY,
    destination TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    body BLOB NOT NULL,
    label TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due REAL NOT NULL,
    claimed_until REAL NOT NULL DEFAULT 0,
    created_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS alert_outbox_due ON alert_outbox(destination, due);
"""


def _sqlite_1(db: sqlite3.Connection) -> None:
    db.executescript(SCHEMA)
    kind = db.execute("SELECT type FROM sqlite_master WHERE name = 'events'").fetchone()
    if kind is not None and kind[0] == "table":
        db.executescript(f"BEGIN IMMEDIATE; {_MIGRATE} COMMIT;")
    db.executescript(EVENTS_VIEW)


def _sqlite_2(db: sqlite3.Connection) -> None:
    db.executescript(OUTBOX)


#: Signals found in the agent's process while the run was going (a live
#: ``external.signal`` from the SDK) are marked: the read API shows ``live``.
LIVE_SIGNALS = "ALTER TABLE signals ADD COLUMN live {kind} NOT NULL DEFAULT {off};"


def _sqlite_3(db: sqlite3.Connection) -> None:
    db.executescript(LIVE_SIGNALS.format(kind="INTEGER", off="0"))


SQLITE_STEPS = [(1, _sqlite_1), (2, _sqlite_2), (3, _sqlite_3)]


def migrate_sqlite(db: sqlite3.Connection) -> int:
    """Apply the steps ``db`` lacks; returns its version now."""
    db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at REAL NOT NULL)")
    have = db.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
    for number, step in SQLITE_STEPS:
        if number > have:
            step(db)
            db.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", (number, time.time()))
            have = number
    return int(have)


# PostgreSQL step 1 differs from SQLite's in what PostgreSQL needs: BIGINT
# for step numbers (the contract allows up to 2**63 - 1, SQLite's INTEGER
# holds them) and ``runs.judging_until``, the lease of the process judging a
# run (several processes share the database; a SQLite file has one).
POSTGRES_1 = """
CREATE TABLE event_chunks (
    seq BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL,
    batch_id TEXT NOT NULL,
    n BIGINT NOT NULL,
    events TEXT NOT NULL
);
CREATE INDEX event_chunks_run ON event_chunks(run_id, seq);
CREATE TABLE event_ids (event_id TEXT PRIMARY KEY);
CREATE TABLE runs (
    run_id TEXT PRIMARY KEY,
    agent_id TEXT NOT NULL,
    agent_version TEXT NOT NULL,
    parent_run_id TEXT,
    status TEXT NOT NULL DEFAULT 'open',
    first_ts DOUBLE PRECISION NOT NULL,
    last_ts DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    end_type TEXT,
    exit_reason TEXT,
    error_type TEXT,
    total_steps BIGINT NOT NULL DEFAULT 0,
    event_count BIGINT NOT NULL DEFAULT 0,
    signal_count INTEGER NOT NULL DEFAULT 0,
    judged_at DOUBLE PRECISION,
    -- Until when a collector process holds the run to judge it (a lease, so
    -- a process that dies mid-judgement leaves the run to the others).
    judging_until DOUBLE PRECISION NOT NULL DEFAULT 0
);
CREATE INDEX runs_agent ON runs(agent_id, last_seen);
CREATE INDEX runs_recent ON runs(last_seen);
CREATE INDEX runs_status ON runs(status, last_seen);
CREATE INDEX runs_judged ON runs(agent_id, judged_at) WHERE status = 'judged';
CREATE TABLE signals (
    id BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    detector TEXT NOT NULL,
    severity TEXT NOT NULL,
    step_index BIGINT,
    evidence TEXT NOT NULL,
    explanation TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX signals_agent ON signals(agent_id, id);
CREATE INDEX signals_run ON signals(run_id);
CREATE TABLE deploys (
    id BIGSERIAL PRIMARY KEY,
    agent_id TEXT NOT NULL,
    version TEXT NOT NULL,
    meta TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX deploys_agent ON deploys(agent_id, at);
"""

POSTGRES_2 = """
CREATE TABLE alert_outbox (
    id BIGSERIAL PRIMARY KEY,
    destination TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    body BYTEA NOT NULL,
    label TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due DOUBLE PRECISION NOT NULL,
    claimed_until DOUBLE PRECISION NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX alert_outbox_due ON alert_outbox(destination, due);
"""

POSTGRES_3 = LIVE_SIGNALS.format(kind="BOOLEAN", off="FALSE")

POSTGRES_STEPS = [(1, POSTGRES_1), (2, POSTGRES_2), (3, POSTGRES_3)]

#: The advisory lock key the migrating process holds ("dunetrace" in ASCII, cut to 63 bits).
_LOCK_KEY = 0x64756E6574726163 & 0x7FFFFFFFFFFFFFFF


def migrate_postgres(conn: Any) -> int:
    """Apply the steps the database lacks, one process at a time; returns
    its version now. ``conn`` is a psycopg connection in autocommit mode."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version"
            " (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION NOT NULL)"
        )
        have = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
        for number, step in POSTGRES_STEPS:
            if number > have:
                conn.execute(step)
                conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (%s, %s)", (number, time.time()))
                have = number
    return int(have)
