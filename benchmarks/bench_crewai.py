"""What the Dunetrace CrewAI listener costs a crew.

The offline two-agent crew of ``examples/crewai_agent.py`` (three searches,
then two answers; 25 Dunetrace events per kickoff) is kicked off with the
listener installed and without it, shipping to a local sink on 127.0.0.1
(``benchmarks/sink.py``, its own process). The two are interleaved batch by
batch, alternating which goes first, so drift in machine load hits both
alike; the table gives the median wall-clock milliseconds per kickoff, and
the median process CPU milliseconds (all threads: CrewAI's handler pool and
event loop, Dunetrace's drain thread), each with its ratio. On Linux it then
splits the CPU per thread: the listener's own work runs on CrewAI's event
loop thread (``CrewAIEventsLoop``), sending on ``dunetrace-drain``.

    python benchmarks/bench_crewai.py [--rounds 20] [--kickoffs 5]
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import threading
import time

# Offline CrewAI: no telemetry, no OpenTelemetry export, no trace prompt.
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
os.environ.setdefault("CREWAI_TESTING", "true")

from _sink_process import Sink
from crewai.events import crewai_event_bus

from dunetrace import Dunetrace
from dunetrace.examples.crewai_agent import AGENT_ID, build_crew
from dunetrace.integrations.crewai import instrument, uninstrument

# 3 runs started/ended, 2 task signals, 5 LLM and 3 tool pairs, and the TOOL_LOOP
# signal live detection (on by default) sends for the researcher's three searches.
EVENTS_PER_KICKOFF = 25


def thread_cpu_ms() -> collections.Counter[str]:
    """CPU milliseconds so far per thread name (Linux /proc; empty elsewhere)."""
    out: collections.Counter[str] = collections.Counter()
    if not os.path.isdir("/proc/self/task"):
        return out
    names = {t.native_id: t.name for t in threading.enumerate()}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(int(tid), "other")
        name = "CrewAISyncHandler (pool)" if name.startswith("CrewAISyncHandler") else name
        out[name] += (int(fields[11]) + int(fields[12])) * 1000 / tick
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--kickoffs", type=int, default=5, help="kickoffs per timed batch")
    args = parser.parse_args()

    sink = Sink().start()
    dt = Dunetrace(endpoint=sink.url)
    crew = build_crew()

    def kickoff() -> None:
        for agent in crew.agents:
            agent.llm.calls = 0  # restart the scripted replies
        crew.kickoff(inputs={"thing": "mountain"})

    def batch(listening: bool) -> tuple[float, float]:
        if listening:
            instrument(dt, agent_id=AGENT_ID)
        start, cpu = time.perf_counter(), time.process_time()
        for _ in range(args.kickoffs):
            kickoff()
        crewai_event_bus.flush()  # the listener's last handlers are part of its cost
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        if listening:
            uninstrument(dt)
        return elapsed / args.kickoffs * 1000, cpu / args.kickoffs * 1000

    for listening in (False, True, False, True):  # warm up imports, caches, the drain thread
        batch(listening)
    dt.flush(10)
    sent_before = sink.count()

    times: dict[str, list[tuple[float, float]]] = {"without listener": [], "with listener": []}
    for round_no in range(args.rounds):
        order = [False, True] if round_no % 2 == 0 else [True, False]
        for listening in order:
            times["with listener" if listening else "without listener"].append(batch(listening))

    dt.flush(10)
    delivered = sink.count() - sent_before

    # Where the CPU goes, per thread, over a longer batch of each.
    breakdown: dict[str, dict[str, float]] = {}
    for listening in (False, True):
        if listening:
            instrument(dt, agent_id=AGENT_ID)
        before = thread_cpu_ms()
        n = args.kickoffs * 4
        for _ in range(n):
            kickoff()
        crewai_event_bus.flush()
        dt.flush(10)
        after = thread_cpu_ms()
        if listening:
            uninstrument(dt)
        breakdown["with" if listening else "without"] = {k: (after[k] - before[k]) / n for k in after}
    dt.shutdown()
    sink.stop()

    base_wall = statistics.median(t[0] for t in times["without listener"])
    base_cpu = statistics.median(t[1] for t in times["without listener"])
    print(f"CrewAI two-agent crew, 3 tool calls + 2 answers; {args.rounds} rounds x {args.kickoffs} kickoffs")
    print(f"{'':18}{'wall ms/kickoff':>16}{'ratio':>8}{'CPU ms/kickoff':>16}{'ratio':>8}")
    for name, values in times.items():
        wall = statistics.median(t[0] for t in values)
        cpu = statistics.median(t[1] for t in values)
        print(f"{name:18}{wall:16.2f}{wall / base_wall:7.3f}x{cpu:16.2f}{cpu / base_cpu:7.3f}x")
    # Each round ran both, back to back: the median of the rounds' own ratios
    # is the figure least moved by drift in the machine's load.
    paired = statistics.median(
        w[0] / wo[0] for w, wo in zip(times["with listener"], times["without listener"], strict=True)
    )
    paired_cpu = statistics.median(
        w[1] / wo[1] for w, wo in zip(times["with listener"], times["without listener"], strict=True)
    )
    print(f"{'paired (median of per-round ratios)':34}{paired:7.3f}x{'':16}{paired_cpu:7.3f}x")
    expected = args.rounds * args.kickoffs * EVENTS_PER_KICKOFF
    print(f"events delivered to the sink: {delivered} of {expected}")
    if breakdown["with"]:
        print("\nCPU ms/kickoff by thread (without -> with listener)")
        for name in sorted(set(breakdown["with"]) | set(breakdown["without"])):
            a, b = breakdown["without"].get(name, 0.0), breakdown["with"].get(name, 0.0)
            if a or b:
                print(f"  {name:28}{a:8.1f} ->{b:7.1f}")


if __name__ == "__main__":
    main()
