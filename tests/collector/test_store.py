"""The SQLite store on its own: what the judge reads is what was stored,
whether it comes from memory or from the file."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from dunetrace.collector.store import Store

from .wire import event, tool_loop_run


def stripped(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["event_type"], e["step_index"], e["payload"], e.get("event_id")) for e in events]


def rows(stored: list[Any]) -> list[tuple[Any, ...]]:
    """Rows (schema.ROW_FIELDS) as ``stripped`` shows events."""
    return [(row[1], row[4], row[7], row[0]) for row in stored]


def test_a_run_seen_whole_is_judged_from_memory(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    events = tool_loop_run("r1")
    store.ingest(events[:3], "b1")
    store.ingest(events[3:], "b2")
    assert "r1" in store._cache
    assert rows(store.take_rows("r1")) == stripped(store.run_events("r1")) == stripped(events)
    assert "r1" not in store._cache and store._cached == 0


def test_resent_events_send_the_judge_to_the_file(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    events = tool_loop_run("r1")
    store.ingest(events[:3], "b1")
    store.ingest(events[:5], "b2")  # three of them again
    assert "r1" not in store._cache
    store.ingest(events[5:], "b3")
    assert rows(store.take_rows("r1")) == stripped(events)
    assert store.run("r1")["event_count"] == len(events)


def test_a_run_begun_before_a_restart_is_read_from_the_file(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    events = tool_loop_run("r1")
    first = Store(path)
    first.ingest(events[:4], "b1")
    first.close()
    second = Store(path)
    second.ingest(events[4:], "b2")
    assert "r1" not in second._cache
    assert rows(second.take_rows("r1")) == stripped(events)


def test_memory_is_bounded(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    store.cache_limit = 25
    runs = [tool_loop_run(f"r{i}") for i in range(5)]  # 10 events each
    for i, events in enumerate(runs):
        store.ingest(events, f"b{i}")
        assert store._cached <= 25
        # What a batch evicts waits for release_evicted (the ingest API
        # calls it after its answer) or the next batch, no longer.
        assert sum(len(e) for e in store._evicted) <= 10
    assert list(store._cache) == ["r3", "r4"]  # the oldest were let go
    assert store._evicted
    store.release_evicted()
    assert not store._evicted
    for i, events in enumerate(runs):
        assert rows(store.take_rows(f"r{i}")) == stripped(events)


def test_events_of_a_judged_run_are_ignored(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    store.ingest(tool_loop_run("r1"), "b1")
    assert store.save_judgement("r1", [])
    assert not store.save_judgement("r1", [])  # once
    stored, ended = store.ingest([event("tool.called", "r1", 9, tool_name="x")], "b2")
    assert (stored, ended) == (0, [])
    assert store.run("r1")["status"] == "judged"
    assert "r1" not in store._cache


def test_a_batch_with_some_events_seen_before_stores_only_the_new_ones(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    events = tool_loop_run("r1")
    assert store.ingest(events[:4], "b1") == (4, [])
    again = [*events[2:7], events[6]]  # two stored before, one twice in the batch
    assert store.ingest(again, "b2") == (3, [])
    stored, ended = store.ingest(events[7:], "b3")
    assert (stored, ended) == (len(events) - 7, ["r1"])
    assert stripped(store.run_events("r1")) == stripped(events)
    assert store.run("r1")["event_count"] == len(events) == store.count_events()


def test_events_without_ids_are_each_stored(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    events = [{k: v for k, v in e.items() if k != "event_id"} for e in tool_loop_run("r1")]
    store.ingest(events, "b1")
    store.ingest(events[:2], "b2")
    assert store.count_events() == len(events) + 2
    assert [e["step_index"] for e in store.run_events("r1")] == [e["step_index"] for e in events + events[:2]]


def test_the_events_view_shows_one_row_per_event(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = Store(path)
    events = tool_loop_run("r1") + tool_loop_run("r2")
    store.ingest(events, "b1")
    store.close()
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT event_id, run_id, agent_id, agent_version, event_type, step_index, ts, parent_run_id, payload,"
            " batch_id FROM events ORDER BY seq, pos"
        ).fetchall()
    expected = [
        (
            e["event_id"],
            e["run_id"],
            e["agent_id"],
            e["agent_version"],
            e["event_type"],
            e["step_index"],
            e["timestamp"],
            None,
            e["payload"],
            "b1",
        )
        for e in events
    ]
    assert [(*r[:8], json.loads(r[8]), r[9]) for r in rows] == expected


OLD_SCHEMA = """
CREATE TABLE events (
    seq INTEGER PRIMARY KEY, event_id TEXT, run_id TEXT NOT NULL, agent_id TEXT NOT NULL,
    agent_version TEXT NOT NULL, event_type TEXT NOT NULL, step_index INTEGER NOT NULL, ts REAL NOT NULL,
    parent_run_id TEXT, payload TEXT NOT NULL, batch_id TEXT NOT NULL
);
"""


def test_a_file_with_one_row_per_event_is_migrated(tmp_path: Path) -> None:
    path = str(tmp_path / "old.db")
    events = tool_loop_run("r1")
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        db.executemany(
            "INSERT INTO events (event_id, run_id, agent_id, agent_version, event_type, step_index, ts,"
            " parent_run_id, payload, batch_id) VALUES (?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    e["event_id"],
                    e["run_id"],
                    e["agent_id"],
                    e["agent_version"],
                    e["event_type"],
                    e["step_index"],
                    e["timestamp"],
                    None,
                    json.dumps(e["payload"]),
                    "old",
                )
                for e in events[:5]
            ],
        )
    db.close()
    store = Store(path)
    assert stripped(store.run_events("r1")) == stripped(events[:5])
    assert store.ingest(events[3:], "b2")[0] == len(events) - 5  # the migrated ids are known
    assert stripped(store.run_events("r1")) == stripped(events)
    assert store.count_events() == len(events)


def events_in_main_file(path: str, tmp_path: Path) -> int:
    """Events in the database file alone, as if its WAL were lost: what
    checkpoints have copied back."""
    copy = tmp_path / "copy.db"
    copy.write_bytes(Path(path).read_bytes())
    with sqlite3.connect(copy) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        count = db.execute("SELECT coalesce(sum(n), 0) FROM event_chunks").fetchone()[0] if tables else 0
    db.close()
    return int(count)


def test_the_wal_is_checkpointed_by_the_store_thread(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = Store(path)
    store.checkpoint_bytes = 1  # after every batch
    events = tool_loop_run("r1")
    store.ingest(events, "b1")
    deadline = time.monotonic() + 10
    while events_in_main_file(path, tmp_path) != len(events):
        assert time.monotonic() < deadline, "the WAL was not checkpointed"
        time.sleep(0.05)
    store.close()


def test_the_wal_starts_over_under_a_steady_stream_of_batches(tmp_path: Path) -> None:
    """Checkpoints run while batches keep being committed; the WAL must
    still start over from its beginning now and then (SQLite does so only
    after a checkpoint that copied everything), not grow with every batch."""
    path = str(tmp_path / "s.db")
    store = Store(path, sync="normal")
    store.checkpoint_bytes = 1  # a checkpoint at each tick of the store's thread (0.1 s)
    payload = {"tool_name": "search", "args_hash": "a" * 64}
    written = 0
    started = time.monotonic()
    i = 0
    while time.monotonic() - started < 2.0:
        events = [event("tool.called", f"r{i}", step, **payload) for step in range(1, 201)]
        store.ingest(events, f"b{i}")
        written += len(json.dumps(events))
        i += 1
    wal = Path(path + "-wal").stat().st_size
    store.close()
    assert i > 40, "too few batches to tell"
    # Never started over, the WAL holds every batch (more than the events'
    # JSON); starting over, it stays a fraction of that.
    assert wal < written / 3, (wal, written, i)
