"""Events stored per second, end to end: the SDK in this process reports
agent runs to a local collector (``dunetrace serve`` in a process of its
own, SQLite in WAL, a 202 only once a batch is committed), and the clock
stops when ``dt.flush()`` has every event acknowledged, so stored.

The agent offers its events at a set rate (``--rate``, 100k events/s by
default, above what is stored): after each step it sleeps until its
schedule is due, as an agent waits for its model. The ``tight loop`` rows
offer them with no pause at all: then the agent's thread holds the GIL
for 5 ms at a time (CPython's switch interval) and the SDK's delivery
threads, which need it after every socket wait, barely move until the agent
is done. Those rows time Python's thread scheduling as much as the path.

Baseline, in the same run and interleaved: the same SDK sending to a
server in a process of its own that answers 202 without reading the
events (what the SDK and HTTP alone allow). Their ratio is the share of
the SDK's delivery rate the collector keeps while validating and storing.

The collector judges a run once ingest has been quiet for 30 ms, or at
most 1 s after the run ended (see collector/judge.py), so a trial shorter
than that is timed without most of the judging; after each trial the clock
runs on until every run is judged, and that lag is printed beside the
rates. Each round ends with a stream long enough that the judge works
while events arrive (480k events, about 10 s); it is timed until every run
is judged, and is the collector's sustained rate.

    python benchmarks/bench_ingest.py            # ~2.5 minutes
    python benchmarks/bench_ingest.py --quick    # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import httpx

from dunetrace import Dunetrace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _servers import collector_command, free_port, start_server

DISCARD_APP = """
import uvicorn

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:  # read the body, keep nothing
        more = (await receive()).get("more_body", False)
    status = 200 if scope["path"] == "/health" else 202
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"{}"})

uvicorn.run(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), log_level="warning")
"""


def start(kind: str, db: str, sync: str = "full") -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    if kind == "collector":
        return start_server(collector_command(port, db, sync), port, kind)
    return start_server([sys.executable, "-c", DISCARD_APP, str(port)], port, kind)


def judge_lag(db: str, started: float, timeout: float = 30.0) -> float:
    """Seconds from ``started`` until the collector has judged every run
    in its file."""
    with sqlite3.connect(db) as conn:
        while conn.execute("SELECT count(*) FROM runs WHERE status != 'judged'").fetchone()[0]:
            if time.perf_counter() - started > timeout:
                raise SystemExit("the collector did not judge every run")
            time.sleep(0.005)
    conn.close()
    return time.perf_counter() - started


def produce(url: str, runs: int, steps: int, batch_size: int, rate: float) -> tuple[float, int, dict[str, object]]:
    """Reports ``runs`` runs of ``steps`` LLM+tool steps, offered at ``rate``
    events/s (0: no pause); returns (seconds until every event was
    acknowledged, events, stats)."""
    dt = Dunetrace(endpoint=url, max_batch_size=batch_size, max_queue_size=2_000_000, flush_interval=0.05)
    events = 0
    started = time.perf_counter()
    for r in range(runs):
        with dt.run(f"bench-agent-{r % 4}", model="m", tools=["search", "fetch"]) as run:
            for s in range(steps):
                step = run.llm_called("m", prompt_tokens=100 + s)
                run.llm_responded(20, 12.5, "tool_calls", 80, step=step)
                tool = "search" if s % 2 else "fetch"
                step = run.tool_called(tool, {"q": s})
                run.tool_responded(tool, True, output_length=200, latency_ms=3.0, step=step)
                events += 4
                if rate:
                    due = started + events / rate - time.perf_counter()
                    if due > 0.001:
                        time.sleep(due)
            run.final_answer()
        events += 2
    done = dt.flush(timeout=120)
    elapsed = time.perf_counter() - started
    stats = dt.stats()
    dt.shutdown(timeout=5)
    if not done or stats["dropped_total"] or stats["sent"] != events:
        raise SystemExit(f"not every event was delivered: {stats}")
    return elapsed, events, stats


def post_encoded(url: str, runs: int, steps: int) -> tuple[float, int, dict[str, object]]:
    """The collector alone: the same events, encoded into 500-event bodies
    before the clock starts, posted one after another on one connection."""
    events = []
    for r in range(runs):
        run_id = str(uuid.uuid4())
        base = {
            "run_id": run_id,
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
    prefix = uuid.uuid4().hex[:12]  # as the SDK: one prefix per client, then a counter
    for i, event in enumerate(events):
        event["event_id"] = f"{prefix}-{i}"
    bodies = [
        json.dumps({"api_key": "", "agent_id": "bench", "events": events[i : i + 500]}).encode()
        for i in range(0, len(events), 500)
    ]
    with httpx.Client(headers={"content-type": "application/json"}, timeout=60) as client:
        started = time.perf_counter()
        for body in bodies:
            response = client.post(url + "/v1/ingest", content=body)
            if response.status_code != 202:
                raise SystemExit(f"collector answered {response.status_code}: {response.text[:300]}")
        elapsed = time.perf_counter() - started
    return elapsed, len(events), {}


LABELS = {
    "collector": "SDK -> collector (stored)",
    "discard": "SDK -> baseline (discarded)",
    "encoded": "pre-encoded -> collector",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=100_000, help="events/s the agent offers")
    parser.add_argument("--sync", choices=["full", "normal"], default="full", help="the collector's --sync")
    args = parser.parse_args()
    runs, steps, rounds, long_runs = (40, 100, 2, 100) if args.quick else (100, 200, args.rounds, 600)

    folder = tempfile.mkdtemp(prefix="dunetrace-bench-")
    db = os.path.join(folder, "bench.db")
    servers = {kind: start(kind, db, args.sync) for kind in ("collector", "discard")}
    rate = args.rate
    # (kind, batch size, offered rate: None for pre-encoded bodies, 0 for a tight loop)
    cases: list[tuple[str, int, float | None]] = [
        ("collector", 500, rate),
        ("discard", 500, rate),
        ("collector", 100, rate),
        ("discard", 100, rate),
        ("encoded", 500, None),
        ("collector", 500, 0),
        ("discard", 500, 0),
    ]
    rates: dict[tuple[str, int, float | None], list[float]] = {case: [] for case in cases}
    lags: list[float] = []
    sustained: list[float] = []
    stored_before = 0
    expected = 0
    try:
        expected += produce(servers["collector"][1], 5, 20, 500, rate)[1]  # warm both paths up
        produce(servers["discard"][1], 5, 20, 500, rate)
        for i in range(rounds):
            for kind, size, offered in cases if i % 2 == 0 else list(reversed(cases)):
                if kind == "encoded":
                    elapsed, events, _ = post_encoded(servers["collector"][1], runs, steps)
                else:
                    elapsed, events, _ = produce(servers[kind][1], runs, steps, size, offered or 0)
                ended = time.perf_counter()
                lag = judge_lag(db, ended) if kind != "discard" else 0.0
                if kind != "discard":
                    lags.append(lag)
                    expected += events
                rates[(kind, size, offered)].append(events / elapsed)
                how = "pre-encoded" if offered is None else "tight loop" if not offered else f"{offered:,.0f}/s offered"
                print(
                    f"  round {i + 1} {kind:9s} batch {size:3d}, {how}: {events} events in {elapsed:.2f}s "
                    f"= {events / elapsed:,.0f}/s" + (f"; every run judged {lag:.2f}s later" if lag else ""),
                    flush=True,
                )
            # A stream long enough that the judge works while events arrive.
            elapsed, events, _ = produce(servers["collector"][1], long_runs, steps, 500, rate)
            lag = judge_lag(db, time.perf_counter())
            expected += events
            sustained.append(events / (elapsed + lag))
            print(
                f"  round {i + 1} long stream: {events} events stored in {elapsed:.2f}s = {events / elapsed:,.0f}/s; "
                f"every run judged {lag:.2f}s later: {sustained[-1]:,.0f}/s stored and judged",
                flush=True,
            )
        with sqlite3.connect(db) as conn:
            stored_before = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(10)

    print(f"\nevents in the collector's SQLite file: {stored_before:,} (expected {expected:,})")
    print(
        f"{runs} runs x {steps} steps = {runs * (2 + 4 * steps):,} events per trial, {rounds} rounds; "
        f"{os.cpu_count()} cores; collector --sync {args.sync}\n"
    )
    print(f"{'case':58s} {'median events/s':>16s} {'min':>10s} {'max':>10s}")
    for kind, size, offered in cases:
        values = rates[(kind, size, offered)]
        how = "" if offered is None else ", tight loop" if not offered else f", {offered / 1000:,.0f}k/s offered"
        label = f"{LABELS[kind]}, batch {size}{how}"
        print(f"{label:58s} {statistics.median(values):16,.0f} {min(values):10,.0f} {max(values):10,.0f}")
    label = f"long stream, stored and judged, batch 500, {rate / 1000:,.0f}k/s offered"
    print(f"{label:58s} {statistics.median(sustained):16,.0f} {min(sustained):10,.0f} {max(sustained):10,.0f}")
    print(f"every run judged after the last 202: median {statistics.median(lags):.2f}s, max {max(lags):.2f}s")
    for size, offered in ((500, rate), (100, rate), (500, 0)):
        ratio = statistics.median(rates[("collector", size, offered)]) / statistics.median(
            rates[("discard", size, offered)]
        )
        print(f"ratio stored/baseline at batch {size}{', tight loop' if not offered else ''}: {ratio:.2f}")
    if stored_before != expected:
        raise SystemExit("the collector did not store every event")


if __name__ == "__main__":
    main()
