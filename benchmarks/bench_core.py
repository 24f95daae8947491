"""Core SDK benchmarks: caller cost, end-to-end throughput, loss, memory.

    python benchmarks/bench_core.py            # all four, about a minute and a half
    python benchmarks/bench_core.py cost       # one of: cost throughput flat loss memory request

Every figure is measured next to its baseline in the same run, because these
machines are noisy: quote the ratios and medians.
"""

from __future__ import annotations

import gc
import json
import pathlib
import subprocess
import sys
import time
from collections import deque

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

from _sink_process import Sink

from dunetrace import Dunetrace

ns = time.perf_counter_ns


def percentile(values: list[int], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))] / 1000


def cost(n: int = 100_000, rate: int = 40_000) -> None:
    """Caller cost per manual event while the drain thread ships every event
    to a live sink in another process, next to the floor: building a dict and
    appending it to a deque, with live detection on and off. The cases together emit ``rate`` events a
    second, which the drain keeps up with: a caller who outruns the network
    meets the bound instead, and the last row prices that path."""
    sink = Sink().start()
    # Live detection is on by default: every detector runs on each event.
    # The rows marked "detectors off" are the same calls on a client built
    # with Dunetrace(detectors=False).
    dt = Dunetrace(endpoint=sink.url, detectors=True)
    run = dt.run("bench").start()
    dt_off = Dunetrace(endpoint=sink.url, detectors=False)
    run_off = dt_off.run("bench").start()
    floor_queue: deque[dict] = deque(maxlen=10_000)

    def floor() -> None:
        floor_queue.append(
            {
                "event_type": "tool.responded",
                "run_id": "r",
                "agent_id": "a",
                "agent_version": "v",
                "step_index": 1,
                "timestamp": time.time(),
                "payload": {"tool_name": "t", "success": True},
                "parent_run_id": None,
            }
        )

    cases = {
        "floor (dict + deque.append)": floor,
        "run.tool_responded(name, True, latency_ms=)": lambda: run.tool_responded("search", True, latency_ms=1.5),
        "run.llm_called(model, prompt_tokens=)": lambda: run.llm_called("gpt-4o", prompt_tokens=812),
        "run.tool_called(name, args) (hashes args)": lambda: run.tool_called("search", {"q": "weather", "n": 3}),
        "  detectors off: run.tool_responded": lambda: run_off.tool_responded("search", True, latency_ms=1.5),
        "  detectors off: run.llm_called": lambda: run_off.llm_called("gpt-4o", prompt_tokens=812),
        "  detectors off: run.tool_called": lambda: run_off.tool_called("search", {"q": "weather", "n": 3}),
    }
    timings: dict[str, list[int]] = {name: [] for name in cases}
    block = 100  # calls per case per slice; the cases interleave so drift hits all alike
    slice_s = block * len(cases) / rate
    gc.disable()
    start = time.perf_counter()
    for i in range(n // block):
        for name, fn in cases.items():
            bucket = timings[name]
            for _ in range(block):
                t = ns()
                fn()
                bucket.append(ns() - t)
        pause = start + (i + 1) * slice_s - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    elapsed = time.perf_counter() - start
    gc.enable()
    dt.flush(30)
    dt_off.flush(30)
    stats = dt.stats()
    stats_off = dt_off.stats()

    # The bound: a client whose queue is full drops the event and counts it.
    full = Dunetrace(endpoint=sink.url, max_queue_size=100, flush_interval=3600)
    full_run = full.run("bench").start()
    while full.stats()["dropped_total"] == 0:
        full_run.tool_responded("search", True, latency_ms=1.5)
    dropped: list[int] = []
    gc.disable()
    for _ in range(n // 10):
        t = ns()
        full_run.tool_responded("search", True, latency_ms=1.5)
        dropped.append(ns() - t)
    gc.enable()
    full.shutdown(0.1)
    dt.shutdown(10)
    dt_off.shutdown(10)
    sink.stop()

    base = percentile(timings["floor (dict + deque.append)"], 0.5)
    emitted = (len(cases) - 1) * n + 2
    print(
        f"\ncaller cost per event ({n} calls each at {len(cases) * n / elapsed:,.0f} calls/s in all; "
        f"timer overhead included in all rows)"
    )
    print(f"{'case':48} {'median us':>10} {'p99 us':>8} {'x floor':>8}")
    for name, values in [*timings.items(), ("queue full: dropped and counted", dropped)]:
        median = percentile(values, 0.5)
        print(f"{name:48} {median:10.2f} {percentile(values, 0.99):8.2f} {median / base:8.1f}")
    sent, dropped_total = stats["sent"] + stats_off["sent"], stats["dropped_total"] + stats_off["dropped_total"]
    print(f"events emitted {emitted:,} (and the live signals), delivered {sent:,}, dropped {dropped_total}")


def throughput(n: int = 500_000) -> None:
    """Events delivered per second, one process emitting flat out to a sink
    on 127.0.0.1, from the first event emitted to the last one received:
    the default settings (batches of 100 growing to 500 under the backlog)
    between fixed batches of 100 (the old default) and of 500 (the ceiling)."""
    print(f"\nend-to-end delivery ({n} events emitted flat out, sink in its own process)")
    print(f"{'batches':>28} {'events/s':>10} {'requests':>9} {'lost':>5} {'dropped':>8}")
    cases = {
        "fixed 100 (old default)": {"batch_size": 100, "max_batch_size": 100},
        "default (100, up to 500)": {},
        "fixed 500 (ceiling)": {"batch_size": 500},
    }
    for label, given in cases.items():
        sink = Sink().start()
        dt = Dunetrace(endpoint=sink.url, max_queue_size=n + 1000, **given)
        run = dt.run("bench").start()
        start = time.perf_counter()
        for _ in range(n - 1):
            run.tool_responded("search", True, latency_ms=1.5)
        run.finish()
        dt.flush(120)
        while sink.count() < n and time.perf_counter() - start < 120:
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
        got = sink.count()
        stats = dt.stats()
        dt.shutdown(5)
        sink.stop()
        print(
            f"{label:>28} {got / elapsed:10,.0f} {stats['batches_sent']:9} {n + 1 - got:5} {stats['dropped_total']:8}"
        )


def request(n: int = 400, reps: int = 7) -> None:
    """CPU of this process per 500-event request through the HTTP exporter
    (the transport call, the total deadline's checks, reading the answer) to
    a sink in another process: the drain's cost per request, without the
    noise of a wall clock on a shared machine. Best and median of ``reps``."""
    from dunetrace.encoding import encode_body
    from dunetrace.export import ExportBatch
    from dunetrace.http_export import HttpExporter
    from dunetrace.options import Options

    sink = Sink().start()
    exporter = HttpExporter(Options.build(sink.url, ""))
    events = [
        {
            "event_type": "tool.responded",
            "run_id": "r" * 36,
            "agent_id": "a",
            "agent_version": "v",
            "step_index": i,
            "timestamp": 1.5,
            "payload": {"tool_name": "search", "success": True, "latency_ms": 1.5},
            "parent_run_id": None,
            "event_id": f"x-{i}",
        }
        for i in range(500)
    ]
    body = encode_body({"api_key": "", "agent_id": "a", "events": events})
    exporter.dunetrace_export(batch=ExportBatch("a", body, 500))  # connect first
    per_request = []
    for _ in range(reps):
        start = time.process_time()
        for _ in range(n):
            assert exporter.dunetrace_export(batch=ExportBatch("a", body, 500)).outcome == "ok"
        per_request.append((time.process_time() - start) / n * 1e6)
    exporter.close()
    sink.stop()
    per_request.sort()
    print(f"\nexporter CPU per 500-event request ({len(body):,} bytes), us: best, median")
    print(f"{'best':48} {per_request[0]:10.1f}")
    print(f"{'median':48} {per_request[len(per_request) // 2]:10.1f}")


FLAT_CHILD = """
import json, sys, time
sys.path.insert(0, {bench!r})
from _sink_process import Sink
from dunetrace import Dunetrace

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

sink = Sink().start()
dt = Dunetrace(endpoint=sink.url, **{given!r})
base = peak_mb()
start = time.perf_counter()
with dt.run("bench") as run:
    for _ in range(299_998):
        run.tool_responded("search", True, latency_ms=1.5)
emit_s = time.perf_counter() - start
dt.flush(120)
got = sink.count()
elapsed = time.perf_counter() - start
print(json.dumps({{"emit_s": emit_s, "elapsed": elapsed, "got": got, "peak_mb": peak_mb() - base,
                  "stats": dt.stats()}}))
dt.shutdown(1)
sink.stop()
"""


def flat() -> None:
    """One run of 300,000 events emitted flat out with default settings (the
    default queue bound of 100,000 included), next to the same with every
    batch at the 500-event ceiling: every event delivered or counted as
    dropped with its reason, memory bounded."""
    print("\none run of 300,000 events emitted flat out, default bounds")
    bench = str(pathlib.Path(__file__).resolve().parent)
    print(
        f"{'batches':>26} {'emit s':>7} {'delivered':>10} {'events/s':>10} {'dropped':>24} "
        f"{'unaccounted':>11} {'peak MB':>8}"
    )
    for label, given in (("default (100, up to 500)", {}), ("fixed 500 (ceiling)", {"batch_size": 500})):
        out = subprocess.run(
            [sys.executable, "-c", FLAT_CHILD.format(bench=bench, given=given)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        r = json.loads(out.splitlines()[-1])
        stats = r["stats"]
        lost = 300_000 - r["got"] - stats["dropped_total"] - stats["queued"]
        print(
            f"{label:>26} {r['emit_s']:7.2f} {r['got']:10,} {r['got'] / r['elapsed']:10,.0f} "
            f"{json.dumps(stats['dropped']):>24} {lost:11} {r['peak_mb']:8.1f}"
        )


def paced(run, rate: int, seconds: float) -> int:
    """Emit ``rate`` events a second for ``seconds``, in 1 ms slices."""
    sent = 0
    start = time.perf_counter()
    per_ms = rate / 1000
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return sent
        due = int(elapsed * 1000 * per_ms)
        while sent < due:
            run.tool_responded("search", True, latency_ms=1.0)
            sent += 1
        time.sleep(0.0005)


def loss() -> None:
    """Healthy sink at 20k events/s for 10 s; then a sink down for 10 s at
    5k events/s, then up. Default bounds in both."""
    print("\nloss with default bounds")
    sink = Sink().start()
    dt = Dunetrace(endpoint=sink.url)
    run = dt.run("bench").start()
    emitted = paced(run, 20_000, 10) + 2  # and run.started, run.completed
    run.finish()
    dt.flush(60)
    time.sleep(0.2)
    got = sink.count()
    print(
        f"healthy, 20k/s for 10 s: emitted {emitted:,}, delivered {got:,}, lost {emitted - got:,}, "
        f"dropped {dt.stats()['dropped_total']}"
    )
    dt.shutdown(5)
    sink.stop()

    sink = Sink()  # not started: the port refuses connections
    dt = Dunetrace(endpoint=sink.url)
    run = dt.run("bench").start()
    emitted = paced(run, 5_000, 10) + 1  # and run.started
    peak = dt.stats()["queued"]
    sink.start()
    emitted += paced(run, 5_000, 2)
    run.finish()
    emitted += 1
    dt.flush(120)
    time.sleep(0.2)
    got = sink.count()
    print(
        f"down 10 s at 5k/s, then up: emitted {emitted:,}, delivered {got:,}, lost {emitted - got:,}, "
        f"peak queued {peak:,}, dropped {dt.stats()['dropped_total']}"
    )
    dt.shutdown(5)
    sink.stop()


MEMORY_CHILD = """
import json, sys, time
sys.path.insert(0, {bench!r})
from _sink_process import Sink
from bench_core import paced
from dunetrace import Dunetrace

def peak_mb():
    # VmHWM, not ru_maxrss: on Linux ru_maxrss carries the parent's peak over fork and exec.
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

mode = {mode!r}
sink = Sink()
if mode != "down":
    sink.start()
dt = Dunetrace(endpoint=sink.url)
if mode != "baseline":
    with dt.run("bench") as run:
        paced(run, 25_000, 12.0)  # 300,000 events at 25k/s
    dt.flush(60 if mode == "up" else 0.1)
print(json.dumps({{"peak_mb": peak_mb(), "stats": dt.stats()}}))
dt.shutdown(0.1)
sink.stop()
"""


def memory() -> None:
    """Peak RSS of one run of 300k events, healthy sink and sink down, next
    to the same process sending no events at all."""
    print("\npeak memory, one run of 300,002 events at 25k/s")
    bench = str(pathlib.Path(__file__).resolve().parent)
    results = {}
    for mode in ("baseline", "up", "down"):
        out = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD.format(bench=bench, mode=mode)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        results[mode] = json.loads(out.splitlines()[-1])
    base = results["baseline"]["peak_mb"]
    print(f"{'case':32} {'peak RSS MB':>12} {'over baseline':>14} {'queued at end':>14} {'dropped':>8}")
    labels = {"baseline": "no events (baseline)", "up": "sink up", "down": "sink down (queue at its bound)"}
    for mode, r in results.items():
        print(
            f"{labels[mode]:32} {r['peak_mb']:12.1f} {r['peak_mb'] - base:14.1f} "
            f"{r['stats']['queued']:14,} {r['stats']['dropped_total']:8,}"
        )


if __name__ == "__main__":
    parts = {"cost": cost, "throughput": throughput, "flat": flat, "loss": loss, "memory": memory, "request": request}
    chosen = sys.argv[1:] or list(parts)
    for part in chosen:
        parts[part]()
