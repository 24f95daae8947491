"""Both stores, SQLite and PostgreSQL (a real server, the ``postgres``
fixture), keep the same promises and answer the API's reads alike."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dunetrace.collector.schema import MAX_INT, BadRequest
from dunetrace.collector.store import SQLiteStore, open_store

from .wire import event, tool_loop_run

TOOL_LOOP = {
    "detector": "TOOL_LOOP",
    "severity": "HIGH",
    "step_index": 3,
    "evidence": {"calls": 4},
    "explanation": {"what": "looped"},
}


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: Any, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        opened = open_store(str(tmp_path / "s.db"))
    else:
        postgres = request.getfixturevalue("postgres")
        opened = open_store(postgres.create_database(f"t_{uuid.uuid4().hex[:12]}"))
    assert opened.engine == request.param
    yield opened
    opened.close()


def stripped(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(e["event_type"], e["step_index"], e["payload"], e.get("event_id")) for e in events]


def test_events_of_a_judged_run_are_ignored(store: Any) -> None:
    store.ingest(tool_loop_run("r1"), "b1")
    assert store.save_judgement("r1", [TOOL_LOOP])
    assert not store.save_judgement("r1", [])  # once
    assert store.ingest([event("tool.called", "r1", 9, tool_name="x")], "b2") == (0, [])
    assert store.run("r1")["status"] == "judged" and store.run("r1")["signal_count"] == 1


def test_only_new_events_are_stored(store: Any) -> None:
    events = tool_loop_run("r1")
    assert store.ingest(events[:4], "b1") == (4, [])
    again = [*events[2:7], events[6]]  # two stored before, one twice in the batch
    assert store.ingest(again, "b2") == (3, [])
    assert store.ingest(events[7:], "b3") == (len(events) - 7, ["r1"])
    assert stripped(store.run_events("r1")) == stripped(events)
    assert store.run("r1")["event_count"] == len(events) == store.count_events()
    # Events without an id cannot be recognised: each copy is stored.
    bare = [{k: v for k, v in e.items() if k != "event_id"} for e in tool_loop_run("r2")[:3]]
    store.ingest(bare, "b4")
    store.ingest(bare[:1], "b5")
    assert store.run("r2")["event_count"] == 4


def test_silent_and_ended_runs_are_offered_to_the_judge(store: Any) -> None:
    store.ingest(tool_loop_run("ended"), "b1")
    store.ingest(tool_loop_run("open")[:3], "b2")
    now = store.run("open")["last_seen"]
    assert store.runs_to_judge(now - 1) == ["ended"]
    assert sorted(store.runs_to_judge(now + 1)) == ["ended", "open"]
    assert store.claim_runs(["ended", "open"]) == ["ended", "open"]


def reads(store: Any) -> dict[str, Any]:
    """What the API reads, without the times the store adds (they differ
    between two stores by construction)."""
    moments = ("last_seen", "judged_at", "created_at", "at", "id")

    def bare(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{k: v for k, v in item.items() if k not in moments} for item in items]

    return {
        "agents": bare(store.agents(50, 0)[0]),
        "runs": bare(store.runs(None, None, 50, 0)[0]),
        "runs with signals": bare(store.runs("agent-b", True, 50, 0)[0]),
        "signals": bare(store.signals(limit=50)[0]),
        "high signals of agent-a": bare(store.signals(agent_id="agent-a", severity="HIGH")[0]),
        "deploys": bare(store.deploys(None, 50, 0)[0]),
        "events": [store.run_events(f"r{i}") for i in range(6)],
        "prior": store.prior_step_counts("agent-a", "none"),
        "count": store.count_events(),
    }


def test_both_engines_answer_the_reads_alike(postgres: Any, tmp_path: Path) -> None:
    lite = SQLiteStore(str(tmp_path / "s.db"))
    pg = open_store(postgres.create_database(f"t_{uuid.uuid4().hex[:12]}"))
    try:
        runs = [tool_loop_run(f"r{i}", agent="agent-a" if i % 2 else "agent-b", calls=3 + i) for i in range(6)]
        opened = [event("run.started", "open-run", 0, agent="agent-c")]
        for store in (lite, pg):
            for i, run in enumerate(runs):
                store.ingest(run, f"b{i}")
            store.ingest(opened, "b9")
            store.save_judgements([(f"r{i}", [TOOL_LOOP] if i % 3 else []) for i in range(5)])
            store.add_deploy("agent-a", "v2", {"note": "ünïcode", "n": 1})
        assert reads(lite) == reads(pg)
    finally:
        lite.close()
        pg.close()


_text = st.text(min_size=1, max_size=20)
_payload = st.dictionaries(
    st.text(max_size=8),
    st.none()
    | st.booleans()
    | st.integers(-(2**63), MAX_INT)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    max_size=4,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    ids=st.tuples(_text, _text, _text, st.none() | _text),
    steps=st.lists(st.integers(0, MAX_INT), min_size=1, max_size=5),
    payload=_payload,
)
def test_what_either_engine_accepts_reads_back_as_sent(
    store: Any, ids: tuple[str, str, str, str | None], steps: list[int], payload: dict[str, Any]
) -> None:
    run_id, agent, version, parent = ids
    run_id = f"{uuid.uuid4().hex}{run_id}"  # one store for every example
    events = [
        {
            "event_type": "tool.called",
            "run_id": run_id,
            "agent_id": agent,
            "agent_version": version,
            "step_index": s,
            "timestamp": 1.5 + s,
            "payload": payload,
            "parent_run_id": parent,
            "event_id": f"{run_id}-{n}",
        }
        for n, s in enumerate(steps)
    ]
    texts = run_id + agent + version + (parent or "")
    before = store.count_events()
    try:
        stored, _ = store.ingest(events, "b")
    except (BadRequest, UnicodeEncodeError):
        # Refused as a whole: PostgreSQL cannot hold U+0000 in text, and
        # neither engine holds a lone surrogate.
        nul = store.engine == "postgresql" and "\x00" in texts
        assert nul or any(0xD800 <= ord(c) <= 0xDFFF for c in texts)
        assert store.count_events() == before
        return
    assert stored == len(events)
    back = store.run_events(run_id)
    assert [(e["agent_id"], e["agent_version"], e["parent_run_id"], e["step_index"], e["payload"]) for e in back] == [
        (agent, version, parent, s, payload) for s in steps
    ]
    run = store.run(run_id)
    assert run["total_steps"] >= 0 and run["event_count"] == len(events)
    assert store.ingest(events, "again")[0] == 0


def test_event_ids_differing_after_a_nul_character_are_different_events(store: Any) -> None:
    first, second = (event("tool.called", "r1", step, tool_name="x") for step in (1, 2))
    first["event_id"], second["event_id"] = "same\x00one", "same\x00two"
    if store.engine == "postgresql":  # its text cannot hold U+0000: the client is told, nothing is stored
        with pytest.raises(BadRequest, match="NUL"):
            store.ingest([first], "b1")
        assert store.count_events() == 0
        return
    # SQLite keeps them apart (json_each would cut both ids at U+0000).
    assert store.ingest([first], "b1") == (1, [])
    assert store.ingest([second, first], "b2") == (1, [])
    assert [e["event_id"] for e in store.run_events("r1")] == ["same\x00one", "same\x00two"]


def test_a_new_event_sent_twice_in_one_batch_is_stored_once(store: Any) -> None:
    events = tool_loop_run("r1")
    assert store.ingest([*events[:3], events[1]], "b1") == (3, [])
    assert stripped(store.run_events("r1")) == stripped(events[:3])


def test_a_live_signal_is_shown_at_once_and_replaced_by_the_judgement(store: Any) -> None:
    events = tool_loop_run("r1")
    live = event(
        "external.signal",
        "r1",
        3,
        signal_name="TOOL_LOOP",
        source="dunetrace",
        severity="HIGH",
        confidence=0.9,
        evidence={"tool": "search", "calls": 3},
        live=True,
    )
    store.ingest([*events[:5], live], "b1")
    shown = store.signals(run_id="r1")[0]
    assert [(s["detector"], s["live"], s["step_index"]) for s in shown] == [("TOOL_LOOP", True, 3)]
    store.ingest(events[5:], "b2")
    assert store.save_judgement("r1", [{**TOOL_LOOP, "live": True}, {**TOOL_LOOP, "detector": "RETRY_STORM"}])
    after = store.signals(run_id="r1")[0]
    assert sorted((s["detector"], s["live"]) for s in after) == [("RETRY_STORM", False), ("TOOL_LOOP", True)]


def test_a_read_only_postgresql_fails_the_write_probe(postgres: Any) -> None:
    """/health asks check_writable(): on a server that refuses writes it
    raises, so /health answers 503 rather than ok."""
    from dunetrace.collector.store import StoreUnavailable

    url = postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")
    pg = open_store(url)
    try:
        pg.check_writable()  # writable: no error
        name = url.rsplit("/", 1)[1]
        postgres.sql(f"ALTER DATABASE {name} SET default_transaction_read_only = on")
        postgres.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        for _ in range(20):  # the pool notices its connections are gone, and opens read-only ones
            try:
                pg.ping()
                break
            except StoreUnavailable:
                pass
        assert pg.ping()
        with pytest.raises(StoreUnavailable, match="read-only"):
            pg.check_writable()
    finally:
        pg.close()
