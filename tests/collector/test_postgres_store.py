"""The PostgreSQL store on a real PostgreSQL server (the ``postgres``
fixture): versioned schema, idempotent ingest, runs claimed and judged once
across stores, alerts claimed once, the errors both engines raise, and the
clear message when the driver is missing."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dunetrace.collector.schema import BadRequest
from dunetrace.collector.server import BackgroundServer
from dunetrace.collector.store import SQLiteStore, StoreUnavailable, describe_target, open_store
from dunetrace.collector.store.migrations import POSTGRES_STEPS
from dunetrace.collector.store.postgres import PostgresStore

from .wire import batch, event, tool_loop_run

TOOL_LOOP = {
    "detector": "TOOL_LOOP",
    "severity": "HIGH",
    "step_index": 3,
    "evidence": {"calls": 4},
    "explanation": {"what": "looped"},
}


def new_database(postgres: Any) -> str:
    return str(postgres.create_database(f"t_{uuid.uuid4().hex[:12]}"))


def in_threads(count: int, work: Callable[[int], Any]) -> list[Any]:
    """``work(i)`` on ``count`` threads started together; their results."""
    results: list[Any] = [None] * count
    errors: list[BaseException] = []
    gate = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            gate.wait(10)
            results[i] = work(i)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return results


def test_stores_starting_together_migrate_once(postgres: Any) -> None:
    url = new_database(postgres)
    stores = in_threads(4, lambda _: PostgresStore(url))
    try:
        assert {store.schema_version for store in stores} == {len(POSTGRES_STEPS)}
        with psycopg.connect(url) as conn:
            versions = [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]
        assert versions == [number for number, _ in POSTGRES_STEPS]
        # Opening it again applies nothing.
        again = PostgresStore(url)
        assert again.schema_version == len(POSTGRES_STEPS)
        again.close()
    finally:
        for store in stores:
            store.close()


def test_ingest_is_idempotent_by_event_id_across_stores(postgres: Any) -> None:
    url = new_database(postgres)
    stores = [PostgresStore(url), PostgresStore(url)]
    try:
        runs = [tool_loop_run(f"run-{i}", agent=f"agent-{i % 3}") for i in range(30)]
        batches = [[e for run in runs[i : i + 5] for e in run] for i in range(0, 30, 5)]
        # Each store is sent every batch, both at once, plus a re-send of the
        # first and one batch carrying an event twice.
        batches.append(batches[0])
        batches.append([*runs[0][:2], runs[0][1]])
        stored = in_threads(2, lambda i: sum(stores[i].ingest(b, f"b{i}-{n}")[0] for n, b in enumerate(batches)))
        total = sum(len(run) for run in runs)
        assert sum(stored) == total
        store = stores[0]
        assert store.count_events() == total
        for run in runs:
            assert [e["event_id"] for e in store.run_events(run[0]["run_id"])] == [e["event_id"] for e in run]
            assert store.run(run[0]["run_id"])["event_count"] == len(run)  # type: ignore[index]
        assert store.runs(None, None, 100, 0)[1] == 30
    finally:
        for store in stores:
            store.close()


def test_a_run_is_claimed_by_one_store_and_judged_once(postgres: Any) -> None:
    url = new_database(postgres)
    stores = [PostgresStore(url) for _ in range(3)]
    try:
        run_ids = sorted(f"run-{i}" for i in range(40))
        stores[0].ingest([e for r in run_ids for e in tool_loop_run(r)], "b")
        claimed = in_threads(3, lambda i: stores[i].claim_runs(run_ids))
        assert sorted(r for mine in claimed for r in mine) == run_ids  # each once, none left out
        # A held run is not offered to another process's sweep, nor claimed again.
        assert stores[1].runs_to_judge(time.time()) == []
        assert stores[1].claim_runs(run_ids) == []

        # Even when two stores both try to save a judgement, one is kept,
        # with its alert rows.
        def outbox(signals: Any) -> list[tuple[str, str, bytes, str]]:
            return [("webhook", uuid.uuid4().hex, b"{}", "TOOL_LOOP")]

        saved = in_threads(3, lambda i: stores[i].save_judgements([(r, [TOOL_LOOP]) for r in run_ids], outbox))
        assert sorted(r for mine in saved for r in mine) == run_ids
        signals, total = stores[2].signals(limit=500)
        assert total == len(run_ids) and sorted(s["run_id"] for s in signals) == run_ids
        assert stores[2].outbox_pending("webhook") == len(run_ids)
        assert stores[2].claim_runs(run_ids) == []
        assert stores[2].runs_to_judge(time.time() + 1000) == []
    finally:
        for store in stores:
            store.close()


def test_a_claim_ends_with_its_lease(postgres: Any) -> None:
    url = new_database(postgres)
    first, second = PostgresStore(url), PostgresStore(url)
    try:
        first.judge_lease = 0.2  # a process that claimed the run and died
        first.ingest(tool_loop_run("orphan"), "b")
        assert first.claim_runs(["orphan"]) == ["orphan"]
        assert second.runs_to_judge(time.time()) == []
        time.sleep(0.3)
        assert second.runs_to_judge(time.time()) == ["orphan"]
        assert second.claim_runs(["orphan"]) == ["orphan"]
    finally:
        first.close()
        second.close()


def test_alert_deliveries_are_claimed_by_one_store(postgres: Any) -> None:
    url = new_database(postgres)
    stores = [PostgresStore(url) for _ in range(3)]
    try:
        stores[0].outbox_add([("webhook", f"d{i}", b"{}", "label") for i in range(50)])
        now = time.time()

        def drain(i: int) -> list[str]:
            got: list[str] = []
            while rows := stores[i].outbox_claim("webhook", now, 60, 7):
                got.extend(row["delivery_id"] for row in rows)
            return got

        claimed = in_threads(3, drain)
        assert sorted(d for mine in claimed for d in mine) == sorted(f"d{i}" for i in range(50))
        assert stores[0].outbox_next_due("webhook") == pytest.approx(now + 60)
    finally:
        for store in stores:
            store.close()


def test_a_nul_character_is_the_clients_error(postgres: Any, start_collector: Callable[..., BackgroundServer]) -> None:
    url = new_database(postgres)
    store = PostgresStore(url)
    try:
        with pytest.raises(BadRequest):
            store.ingest([event("run.started", run_id="bad\x00run")], "b")
        assert store.count_events() == 0
    finally:
        store.close()
    server = start_collector(db_path=url)
    answer = httpx.post(server.url + "/v1/ingest", json=batch([event("run.started", run_id="bad\x00run")]))
    assert answer.status_code == 422 and "NUL" in answer.text


def test_a_lost_server_connection_is_a_503_and_then_recovers(
    postgres: Any, start_collector: Callable[..., BackgroundServer]
) -> None:
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = postgres.create_database(name)
    # No sweep for silent runs during the test: only the requests below meet the dropped connections.
    server = start_collector(db_path=url, sweep_interval=3600)
    assert httpx.post(server.url + "/v1/ingest", json=batch(tool_loop_run("before"))).status_code == 202
    deadline = time.monotonic() + 10
    while httpx.get(server.url + "/api/runs/before").json()["run"]["status"] != "judged":
        assert time.monotonic() < deadline, "the run was not judged"
        time.sleep(0.05)
    # What a PostgreSQL restart or failover does to the collector's connections.
    postgres.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
    answers = [httpx.post(server.url + "/v1/ingest", json=batch(tool_loop_run(f"r{i}"))).status_code for i in range(3)]
    assert answers == [503, 202, 202], answers
    assert httpx.get(server.url + "/api/runs/before").status_code == 200
    assert [httpx.get(server.url + f"/api/runs/r{i}").status_code for i in range(3)] == [404, 200, 200]


def test_sqlite_errors_are_store_unavailable_too(
    tmp_path: Path, start_collector: Callable[..., BackgroundServer]
) -> None:
    path = str(tmp_path / "broken.db")
    store = SQLiteStore(path)
    try:
        with sqlite3.connect(path) as other:
            other.execute("DROP TABLE event_ids")
        with pytest.raises(StoreUnavailable) as raised:
            store.ingest(tool_loop_run("r"), "b")
        assert isinstance(raised.value.__cause__, sqlite3.Error)
    finally:
        store.close()
    server = start_collector(db_path=path)
    assert httpx.post(server.url + "/v1/ingest", json=batch(tool_loop_run("r2"))).status_code == 503
    assert httpx.get(server.url + "/api/runs").status_code == 200


def test_without_the_driver_serve_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['psycopg'] = None\n"  # as if psycopg were not installed
        "from dunetrace.cli import main\n"
        "sys.exit(main(['serve', '--db', 'postgresql://dt:s3cret@127.0.0.1:9/dunetrace']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "DUNETRACE_DB": ""},
    )
    assert result.returncode == 1, result.stderr
    assert "pip install 'dunetrace[postgres]'" in result.stderr
    assert "s3cret" not in result.stderr  # the password is not printed
    # And the store itself says the same to a program that opens it.
    code = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from dunetrace.collector.store import open_store\n"
        "open_store('postgresql://127.0.0.1:9/dunetrace')"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1 and "ImportError" in result.stderr
    assert "dunetrace[postgres]" in result.stderr


def test_open_store_picks_the_engine(postgres: Any, tmp_path: Path) -> None:
    pg = open_store(new_database(postgres))
    lite = open_store(str(tmp_path / "x.db"))
    try:
        assert (pg.engine, lite.engine) == ("postgresql", "sqlite")
    finally:
        pg.close()
        lite.close()


def test_sync_normal_is_asynchronous_commit(postgres: Any) -> None:
    url = new_database(postgres)
    full, normal = open_store(url), open_store(url, sync="normal")
    try:
        assert full._reader().execute("SHOW synchronous_commit").fetchone()[0] == "on"
        assert normal._reader().execute("SHOW synchronous_commit").fetchone()[0] == "off"
        assert normal.ingest(tool_loop_run("r"), "b") == (10, ["r"])
    finally:
        full.close()
        normal.close()


@pytest.mark.parametrize(
    ("given", "shown"),
    [
        ("postgresql://dt:s3cret@db.internal:5433/dunetrace", "postgresql://dt:***@db.internal:5433/dunetrace"),
        ("postgres://:s3cret@db/x", "postgres://:***@db/x"),
        ("postgresql://dt@db/x?sslmode=require&password=s3cret", "postgresql://dt@db/x?sslmode=require&password=***"),
        ("postgresql://dt@db/x", "postgresql://dt@db/x"),
        ("dunetrace.db", "dunetrace.db"),
    ],
)
def test_the_password_is_never_shown(given: str, shown: str) -> None:
    assert describe_target(given) == shown


@given(
    user=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_", min_size=1, max_size=10),
    password=st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ!$*-", min_size=6, max_size=20),  # not in the rest
    in_query=st.booleans(),
)
def test_no_password_survives_describe_target(user: str, password: str, in_query: bool) -> None:
    url = (
        f"postgresql://{user}@db:5432/dunetrace?password={password}"
        if in_query
        else f"postgresql://{user}:{password}@db:5432/dunetrace"
    )
    shown = describe_target(url)
    assert password not in shown and user in shown and "db:5432/dunetrace" in shown


def test_serve_says_when_the_database_cannot_be_reached(postgres: Any) -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for url in (
        f"postgresql://dt:s3cret@127.0.0.1:{port}/dunetrace",  # no server
        f"postgresql://nobody:s3cret@127.0.0.1:{postgres.port}/postgres",  # a role that does not exist
    ):
        result = subprocess.run(
            [sys.executable, "-m", "dunetrace.cli", "serve", "--port", "0", "--db", url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        assert "cannot open the database postgresql://" in result.stderr and ":***@" in result.stderr
        assert "Traceback" not in result.stderr and "s3cret" not in result.stderr


@pytest.mark.parametrize("lease", ["soon", "0", "-5", "nan", "inf"])
def test_a_bad_judge_lease_is_refused_at_start(lease: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dunetrace.cli", "serve", "--port", "0", "--db", "x.db"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "DUNETRACE_JUDGE_LEASE": lease},
    )
    assert result.returncode == 2, result.stderr
    assert "DUNETRACE_JUDGE_LEASE" in result.stderr and "positive number of seconds" in result.stderr
