"""Two real ``dunetrace serve`` processes sharing one real PostgreSQL
database, sent the same batches at the same time (what a client retrying
through a load balancer does): every event stored once, every run judged
once, one webhook alert per signal, and both processes' read APIs agree."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from .test_collector_alerts import Receiver
from .wire import batch, event, tool_loop_run

RUNS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """``dunetrace serve --db <url>`` in a process of its own."""

    def __init__(self, url: str, webhook: str | None = None, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        alerts = ["--webhook", webhook, "--alert-min-severity", "HIGH"] if webhook else []
        # A session of its own: kill() ends the collector and its judge
        # process together, as a host going down does.
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dunetrace.cli",
                "serve",
                "--port",
                str(self.port),
                "--db",
                url,
                *alerts,
                "--run-timeout",
                "3",
                "--log-level",
                "info",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
            start_new_session=True,
        )

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.communicate(timeout=15)

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.url + "/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.process.kill()
                pytest.fail(f"dunetrace serve did not start: {self.process.communicate()}")
            time.sleep(0.1)

    def get(self, path: str) -> Any:
        answer = httpx.get(self.url + path, timeout=10)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def stop(self) -> str:
        self.process.terminate()
        try:
            _, err = self.process.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
        return str(err)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def healthy(run_id: str) -> list[dict[str, Any]]:
    return [
        event("run.started", run_id, 0, tools=["search"]),
        event("tool.called", run_id, 1, tool_name="search", args_hash="b" * 64),
        event("tool.responded", run_id, 1, tool_name="search", success=True),
        event("run.completed", run_id, 1, exit_reason="final_answer", total_steps=1),
    ]


def test_two_collectors_store_judge_and_alert_each_run_once(postgres: Any, receiver: Receiver) -> None:
    url = postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")
    loops = {f"loop-{i}" for i in range(0, RUNS, 2)}
    runs = [tool_loop_run(f"loop-{i}") if f"loop-{i}" in loops else healthy(f"ok-{i}") for i in range(RUNS)]
    # Batches cut across runs: a run's events spread over consecutive batches.
    flat = [e for run in runs for e in run]
    batches = [flat[i : i + 23] for i in range(0, len(flat), 23)]
    collectors = [Serve(url, receiver.url), Serve(url, receiver.url)]
    errors: list[str] = []
    try:
        for collector in collectors:
            collector.wait_ready()
        gate = threading.Barrier(2)

        def send(collector: Serve) -> None:
            gate.wait(10)
            with httpx.Client(timeout=30) as client:
                for body in batches:
                    answer = client.post(collector.url + "/v1/ingest", json=batch(body))
                    if answer.status_code != 202:
                        errors.append(f"{collector.url}: {answer.status_code} {answer.text}")

        threads = [threading.Thread(target=send, args=(c,)) for c in collectors]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert not errors, errors

        # Every run judged, as either process sees it.
        deadline = time.monotonic() + 60
        while any(
            c.get("/api/runs?limit=500")["items"][i]["status"] != "judged" for c in collectors for i in range(RUNS)
        ):
            assert time.monotonic() < deadline, "runs left unjudged"
            time.sleep(0.2)
        # One alert per looping run: wait for them, then a while longer for
        # any duplicate a second process would send.
        while len(receiver.received) < len(loops):
            assert time.monotonic() < deadline, f"{len(receiver.received)} alerts of {len(loops)}"
            time.sleep(0.1)
        time.sleep(2.5)  # more than the alert workers' poll interval

        alerted = [json.loads(body) for _, body in receiver.received]
        assert sorted(a["run_id"] for a in alerted) == sorted(loops)
        assert {a["detector"] for a in alerted} == {"TOOL_LOOP"}
        assert len({h["x-dunetrace-delivery"] for h, _ in receiver.received}) == len(loops)

        # The database: nothing duplicated, nothing lost, one judgement per run.
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT coalesce(sum(n), 0) FROM event_chunks").fetchone()[0] == len(flat)
            assert conn.execute("SELECT count(*) FROM event_ids").fetchone()[0] == len(flat)
            assert conn.execute("SELECT count(*), count(DISTINCT run_id) FROM runs").fetchone() == (RUNS, RUNS)
            twice = conn.execute(
                "SELECT run_id, detector FROM signals GROUP BY run_id, detector HAVING count(*) > 1"
            ).fetchall()
            assert twice == []
            assert conn.execute("SELECT count(*) FROM alert_outbox").fetchone()[0] == 0
        for run in runs:
            run_id = run[0]["run_id"]
            views = [c.get(f"/api/runs/{run_id}") for c in collectors]
            assert views[0] == views[1]
            assert [e["event_id"] for e in views[0]["events"]] == [e["event_id"] for e in run]
            assert views[0]["run"]["event_count"] == len(run)
            detectors = [s["detector"] for s in views[0]["signals"]]
            assert ("TOOL_LOOP" in detectors) == (run_id in loops)
        listings = [c.get("/api/runs?limit=500") for c in collectors]
        assert listings[0] == listings[1] and listings[0]["total"] == RUNS
        assert collectors[0].get("/api/signals?limit=500") == collectors[1].get("/api/signals?limit=500")
        assert collectors[0].get("/api/agents") == collectors[1].get("/api/agents")
    finally:
        logs = [c.stop() for c in collectors]
    for log in logs:
        # The detectors ran in each collector's worker process, which read
        # the runs from PostgreSQL.
        assert "Traceback" not in log and "judge process failed" not in log, log
        assert f"database postgresql://dunetrace:***@127.0.0.1:{postgres.port}/" in log, log  # no password shown


def test_a_collector_killed_mid_stream_loses_nothing(postgres: Any) -> None:
    """A load balancer's view: batches go to both collectors in turn; one is
    killed (-9, with its judge process) while batches are in flight, and
    what it did not answer is sent to the other. Every event is stored once
    and every run judged once, the killed one's claimed runs included."""
    url = postgres.create_database(f"t_{uuid.uuid4().hex[:12]}")
    runs = [tool_loop_run(f"loop-{i}") if i % 2 else healthy(f"ok-{i}") for i in range(RUNS)]
    flat = [e for run in runs for e in run]
    batches = [flat[i : i + 7] for i in range(0, len(flat), 7)]
    # A short lease, so the survivor takes over the killed one's runs within the test.
    collectors = [Serve(url, DUNETRACE_JUDGE_LEASE="2"), Serve(url, DUNETRACE_JUDGE_LEASE="2")]
    survivor, victim = collectors
    try:
        for collector in collectors:
            collector.wait_ready()
        killed = threading.Event()
        failed_over = 0

        def kill() -> None:
            victim.kill()
            killed.set()

        with httpx.Client(timeout=30) as client:
            for n, body in enumerate(batches):
                if n == len(batches) // 3:  # killed while the next batches are sent
                    threading.Thread(target=kill, daemon=True).start()
                target = collectors[n % 2]
                try:
                    answer = client.post(target.url + "/v1/ingest", json=batch(body))
                    status = answer.status_code
                except httpx.TransportError:
                    status = 0
                if status != 202:  # the load balancer retries on the other host
                    failed_over += 1
                    answer = client.post(survivor.url + "/v1/ingest", json=batch(body))
                    assert answer.status_code == 202, answer.text
                time.sleep(0.005)
        assert killed.wait(15) and failed_over > 0, failed_over

        deadline = time.monotonic() + 60
        while any(run["status"] != "judged" for run in survivor.get("/api/runs?limit=500")["items"]):
            assert time.monotonic() < deadline, "runs left unjudged after the kill"
            time.sleep(0.2)
        with psycopg.connect(url) as conn:
            assert conn.execute("SELECT coalesce(sum(n), 0) FROM event_chunks").fetchone()[0] == len(flat)
            assert conn.execute("SELECT count(*) FROM runs WHERE status = 'judged'").fetchone()[0] == RUNS
            twice = conn.execute(
                "SELECT run_id, detector FROM signals GROUP BY run_id, detector HAVING count(*) > 1"
            ).fetchall()
            assert twice == []
            looped = {row[0] for row in conn.execute("SELECT run_id FROM signals WHERE detector = 'TOOL_LOOP'")}
        assert looped == {run[0]["run_id"] for run in runs if run[0]["run_id"].startswith("loop-")}
        for run in runs:
            stored = survivor.get(f"/api/runs/{run[0]['run_id']}")["events"]
            assert [e["event_id"] for e in stored] == [e["event_id"] for e in run]
    finally:
        if victim.process.poll() is None:
            victim.kill()
        log = survivor.stop()
    assert "Traceback" not in log, log
