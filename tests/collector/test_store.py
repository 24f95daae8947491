"""The SQLite store on its own: what the judge reads is what was stored,
whether it comes from memory or from the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dunetrace.collector.store import Store

from .wire import event, tool_loop_run


def stripped(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["event_type"], e["step_index"], e["payload"], e.get("event_id")) for e in events]


def test_a_run_seen_whole_is_judged_from_memory(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    events = tool_loop_run("r1")
    store.ingest(events[:3], "b1")
    store.ingest(events[3:], "b2")
    assert "r1" in store._cache
    assert stripped(store.take_events("r1")) == stripped(store.run_events("r1")) == stripped(events)
    assert "r1" not in store._cache and store._cached == 0


def test_resent_events_send_the_judge_to_the_file(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    events = tool_loop_run("r1")
    store.ingest(events[:3], "b1")
    store.ingest(events[:5], "b2")  # three of them again
    assert "r1" not in store._cache
    store.ingest(events[5:], "b3")
    assert stripped(store.take_events("r1")) == stripped(events)
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
    assert stripped(second.take_events("r1")) == stripped(events)


def test_memory_is_bounded(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    store.cache_limit = 25
    runs = [tool_loop_run(f"r{i}") for i in range(5)]  # 10 events each
    for i, events in enumerate(runs):
        store.ingest(events, f"b{i}")
        assert store._cached <= 25
    assert list(store._cache) == ["r3", "r4"]  # the oldest were let go
    for i, events in enumerate(runs):
        assert stripped(store.take_events(f"r{i}")) == stripped(events)


def test_events_of_a_judged_run_are_ignored(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "s.db"))
    store.ingest(tool_loop_run("r1"), "b1")
    assert store.save_judgement("r1", [])
    assert not store.save_judgement("r1", [])  # once
    stored, ended = store.ingest([event("tool.called", "r1", 9, tool_name="x")], "b2")
    assert (stored, ended) == (0, [])
    assert store.run("r1")["status"] == "judged"
    assert "r1" not in store._cache
