"""Events stored per second by ``dunetrace serve`` on PostgreSQL, next to
SQLite, in the same run.

Each trial posts pre-encoded 500-event bodies (runs of LLM and tool steps,
as the SDK sends them) on two connections at once and stops the clock when
the last 202 is back: every event committed. Cases, interleaved round by
round:

- SQLite: one collector on one file, ``--sync full`` (each batch reaches
  the disk before its 202);
- PostgreSQL: one collector on a throw-away local cluster with ``fsync`` on
  and ``synchronous_commit`` on (each commit reaches the disk too);
- PostgreSQL, two collectors on the same database, one connection each: the
  several-hosts set-up on one machine.

Debian's ``postgresql`` provides the server (``apt-get install postgresql``);
the cluster is started on 127.0.0.1 and removed afterwards.

    python benchmarks/bench_store.py            # about a minute and a half
    python benchmarks/bench_store.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from typing import Any

import httpx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.pg import PostgresServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _servers import collector_command, free_port, start_server

CONNECTIONS = 2


def start_collector(db: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    return start_server(collector_command(port, db), port, "the collector")


def bodies(runs: int, steps: int) -> list[bytes]:
    """``runs`` runs of ``steps`` LLM + tool steps as 500-event bodies, with
    event ids of a fresh prefix (as the SDK: one per client, then a count)."""
    events: list[dict[str, Any]] = []
    for r in range(runs):
        base = {
            "run_id": str(uuid.uuid4()),
            "agent_id": f"bench-agent-{r % 4}",
            "agent_version": "0123456789ab",
            "parent_run_id": None,
        }
        events.append(
            {
                **base,
                "event_type": "run.started",
                "step_index": 0,
                "timestamp": time.time(),
                "payload": {"model": "m", "tools": ["fetch", "search"]},
            }
        )
        for s in range(1, steps + 1):
            tool = "search" if s % 2 else "fetch"
            for kind, payload in (
                ("llm.called", {"model": "m", "prompt_tokens": 100 + s}),
                (
                    "llm.responded",
                    {"completion_tokens": 20, "latency_ms": 12.5, "finish_reason": "tool_calls", "output_length": 80},
                ),
                ("tool.called", {"tool_name": tool, "args_hash": f"{s:064x}"}),
                ("tool.responded", {"tool_name": tool, "success": True, "output_length": 200, "latency_ms": 3.0}),
            ):
                events.append(
                    {
                        **base,
                        "event_type": kind,
                        "step_index": 2 * s - (kind[0] == "l"),
                        "timestamp": time.time(),
                        "payload": payload,
                    }
                )
        events.append(
            {
                **base,
                "event_type": "run.completed",
                "step_index": 2 * steps,
                "timestamp": time.time(),
                "payload": {"exit_reason": "final_answer", "total_steps": 2 * steps},
            }
        )
    prefix = uuid.uuid4().hex[:12]
    for i, event in enumerate(events):
        event["event_id"] = f"{prefix}-{i}"
    return [
        json.dumps({"api_key": "", "agent_id": "bench", "events": events[i : i + 500]}).encode()
        for i in range(0, len(events), 500)
    ]


def post(urls: list[str], encoded: list[bytes]) -> float:
    """Seconds to post every body, on ``CONNECTIONS`` connections spread
    over ``urls``; a run's bodies stay on one connection, in order."""
    lanes: list[list[bytes]] = [encoded[i::CONNECTIONS] for i in range(CONNECTIONS)]
    failures: list[str] = []
    gate = threading.Barrier(CONNECTIONS + 1)

    def lane(url: str, mine: list[bytes]) -> None:
        with httpx.Client(headers={"content-type": "application/json"}, timeout=60) as client:
            gate.wait()
            for body in mine:
                answer = client.post(url + "/v1/ingest", content=body)
                if answer.status_code != 202:
                    failures.append(f"{answer.status_code}: {answer.text[:200]}")

    threads = [threading.Thread(target=lane, args=(urls[i % len(urls)], lanes[i])) for i in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    gate.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if failures:
        raise SystemExit(f"not every batch was stored: {failures[:3]}")
    return elapsed


def count(url: str) -> int:
    return int(httpx.get(url + "/api/runs?limit=1", timeout=30).json()["total"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    rounds, runs, steps = (1, 40, 50) if args.quick else (args.rounds, 100, 100)
    events_per_trial = runs * (4 * steps + 2)

    workdir = tempfile.mkdtemp(prefix="dunetrace-bench-store-")
    postgres = PostgresServer(fsync=True).start()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        one_pg = postgres.create_database("bench_one")
        two_pg = postgres.create_database("bench_two")
        sqlite_process, sqlite_url = start_collector(os.path.join(workdir, "bench.db"))
        pg_process, pg_url = start_collector(one_pg)
        pair = [start_collector(two_pg), start_collector(two_pg)]
        processes = [sqlite_process, pg_process, *(p for p, _ in pair)]
        cases = {
            "SQLite, one collector (--sync full)": [sqlite_url],
            "PostgreSQL, one collector (fsync on)": [pg_url],
            "PostgreSQL, two collectors, one database": [url for _, url in pair],
        }
        rates: dict[str, list[float]] = {name: [] for name in cases}
        posted: dict[str, int] = {name: 0 for name in cases}
        for r in range(rounds):
            for name, urls in cases.items():
                encoded = bodies(runs, steps)
                seconds = post(urls, encoded)
                rates[name].append(events_per_trial / seconds)
                posted[name] += runs
                print(f"round {r + 1}: {name}: {events_per_trial / seconds:,.0f} events/s", flush=True)
        for name, urls in cases.items():
            stored_runs = count(urls[0])
            if stored_runs != posted[name]:
                raise SystemExit(f"{name}: {stored_runs} runs stored of {posted[name]}")
    finally:
        for process in processes:
            process.terminate()
            process.wait(15)
        postgres.stop()

    base = statistics.median(rates["SQLite, one collector (--sync full)"])
    print(
        f"\n{events_per_trial:,} events a trial ({runs} runs x {steps} steps), 500-event bodies, "
        f"{CONNECTIONS} connections, {rounds} rounds"
    )
    print("| case | median events/s (min - max) | / SQLite |")
    print("|---|---|---|")
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:,.0f} ({min(values):,.0f} - {max(values):,.0f}) | {median / base:.2f} |")


if __name__ == "__main__":
    main()
