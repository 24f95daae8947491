"""What the sending side costs per event: the CPU of a client's drain and
sender threads, and the requests they make, for the shape of traffic the
LangGraph benchmark makes.

Each client emits in blocks, as one client of ``bench_langchain.py`` does:
10 runs of 49 events (a run every 11 ms, about 490 events in 110 ms), then
a pause while the other configurations run. Two clients, sending to
``sink.py`` in its own process, take turns block by block, so drift in the
machine's load hits both alike:

- ``lingering`` (the default): a drain woken by a full batch, or by its
  timer, while the oldest queued event is younger than ``flush_interval``
  waits until that event is due (or a batch of ``max_batch_size`` is
  queued), so a block leaves in one request;
- ``sent at once``: the baseline, the same client with lingering off (it
  sends as soon as a batch is full and at every tick, as before).

Printed: CPU microseconds per event and per block of the sending threads
(median over blocks and in total), requests per block, and the age of the
oldest event of each request when it left (median and worst), against the
flush interval.

    python benchmarks/bench_drain.py [--blocks 30] [--pause 0.4]
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from dunetrace import Dunetrace

HERE = Path(__file__).resolve().parent
RUNS_PER_BLOCK = 10
FIRST_TIMESTAMP = re.compile(rb'"timestamp":([0-9.e+]+)')
TOOLS_PER_RUN = 22
#: run.started, 22 tool calls and their answers, one model call, run.completed,
#: and the two live signals the run fires (as the LangGraph agent's runs do)
EVENTS_PER_RUN = 2 + 2 * TOOLS_PER_RUN + 1 + 2


class Sink:
    """``sink.py`` in its own process: it counts events and requests."""

    def __init__(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.process = subprocess.Popen(
            [sys.executable, str(HERE / "sink.py"), str(port)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.process.stdout.readline()  # "ready"
        self.url = f"http://127.0.0.1:{port}"

    def count(self) -> dict[str, int]:
        with urllib.request.urlopen(self.url + "/count") as answer:
            return dict(json.load(answer))

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(5)


def thread_cpu(dt: Dunetrace) -> float:
    """Seconds of CPU the client's drain and sender threads have used."""
    buffer = dt._buffer
    threads = [buffer._thread] + [s._thread for s in buffer._senders]
    total = 0.0
    for thread in threads:
        if thread is not None and thread.ident is not None and thread.is_alive():
            total += time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
    return total


def block(dt: Dunetrace, agent: str) -> None:
    """About 490 events in about 110 ms: ten runs, one every 11 ms."""
    start = time.monotonic()
    for n in range(RUNS_PER_BLOCK):
        with dt.run(agent) as run:
            for i in range(TOOLS_PER_RUN):
                step = run.tool_called("lookup", {"city": "Lisbon", "i": i})
                run.tool_responded("lookup", True, step=step)
            run.llm_called("fake-model", prompt_tokens=120)
        time.sleep(max(0.0, start + (n + 1) * 0.011 - time.monotonic()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--blocks", type=int, default=30, help="blocks per client")
    parser.add_argument("--pause", type=float, default=0.4, help="seconds between a client's blocks")
    args = parser.parse_args()

    sink = Sink()
    clients = {"lingering": Dunetrace(endpoint=sink.url), "sent at once": Dunetrace(endpoint=sink.url)}
    clients["sent at once"]._buffer.linger = False
    ages: dict[str, list[float]] = {name: [] for name in clients}
    watch(clients, ages)
    for name, dt in clients.items():  # warm up: threads, connections, caches
        for _ in range(3):
            block(dt, name)
        dt.flush(10)
    for values in ages.values():
        values.clear()
    before = sink.count()
    per_block: dict[str, list[float]] = {name: [] for name in clients}
    requests = dict.fromkeys(clients, 0)
    events = dict.fromkeys(clients, 0)
    for n in range(args.blocks):
        order = list(clients.items())
        if n % 2:
            order.reverse()
        for name, dt in order:
            stats, start = dt.stats(), thread_cpu(dt)
            block(dt, name)
            time.sleep(args.pause / 2)
            for other in clients.values():
                other.flush(5)  # the block has left: its whole cost is counted
            per_block[name].append(thread_cpu(dt) - start)
            requests[name] += dt.stats()["batches_sent"] - stats["batches_sent"]
            events[name] += dt.stats()["sent"] - stats["sent"]
    after = sink.count()
    for dt in clients.values():
        dt.shutdown()
    sink.close()

    delivered = after["events"] - before["events"]
    print(
        f"blocks of {events['lingering'] // args.blocks} events in ~110 ms, {args.blocks} per client, "
        f"flush_interval {clients['lingering'].options.flush_interval * 1000:.0f} ms"
    )
    print(f"{'':14}{'us/event':>10}{'us/block':>10}{'ratio':>8}{'req/block':>11}{'oldest ms':>11}{'worst':>8}")
    base = statistics.median(per_block["sent at once"])
    for name in clients:
        median = statistics.median(per_block[name])
        age = ages[name]
        print(
            f"{name:14}{median / (events[name] / args.blocks) * 1e6:10.2f}{median * 1e6:10.0f}"
            f"{median / base:7.2f}x{requests[name] / args.blocks:11.2f}"
            f"{statistics.median(age) * 1000:11.0f}{max(age) * 1000:8.0f}"
        )
    print("sending threads' CPU per block (median over blocks); oldest: the age of a request's oldest")
    print(f"event as it left (median, worst); delivered {delivered} of {sum(events.values())} events")


def watch(clients: dict[str, Dunetrace], ages: dict[str, list[float]]) -> None:
    """Record, as each request leaves, how long its oldest event waited."""
    for name, dt in clients.items():
        export = dt._buffer._export
        record = ages[name]
        lock = threading.Lock()

        def timed(batch: Any, export: Any = export, record: list[float] = record, lock: Any = lock) -> Any:
            # A batch holds one agent's events in order: its first is its
            # oldest. Read from the body, not decoded: this runs on the
            # thread being measured.
            oldest = float(FIRST_TIMESTAMP.search(batch.body).group(1))
            with lock:
                record.append(time.time() - oldest)
            return export(batch)

        dt._buffer._export = timed  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
