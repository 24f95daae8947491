"""What the OpenAI Agents SDK integration costs an agent run.

The offline agent of ``examples/openai_agents_agent.py`` (the SDK's
Responses model on a scripted ``httpx.MockTransport``: five calls of one
tool, then an answer) runs with the SDK's trace processors set to:

* ``empty processor`` a ``TracingProcessor`` that does nothing: the
  baseline (the SDK builds its spans whatever is registered)
* ``dunetrace``       ``DunetraceTracingProcessor``, shipping over HTTP to a
  sink in another process on 127.0.0.1 (benchmarks/sink.py)
* ``dt, no export``   the same with ``Dunetrace(export="none")``

Interleaved round by round (order alternating); the table gives the median
milliseconds per run (wall clock and process CPU time), the fastest batch,
and each one's ratio to ``empty processor``.

    python benchmarks/bench_openai_agents.py [--rounds 40] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

os.environ.pop("OPENAI_API_KEY", None)

from _sink_process import Sink
from agents import set_trace_processors
from agents.tracing.processor_interface import TracingProcessor

from dunetrace import Dunetrace
from dunetrace.examples.openai_agents_agent import ScriptedResponses, ask
from dunetrace.integrations.openai_agents import DunetraceTracingProcessor

TOOL_CALLS = 5
EVENTS_PER_RUN = 2 + 2 * (TOOL_CALLS + 1) + 2 * TOOL_CALLS
BASELINE = "empty processor"


class EmptyProcessor(TracingProcessor):
    def on_trace_start(self, trace: Any) -> None:
        return None

    def on_trace_end(self, trace: Any) -> None:
        return None

    def on_span_start(self, span: Any) -> None:
        return None

    def on_span_end(self, span: Any) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self) -> None:
        return None


def one_run() -> None:
    script = ScriptedResponses("check_room", {"room_type": "sea-view", "night": "2026-12-24"}, TOOL_CALLS, "No.")
    ask("Is a sea-view room free on 2026-12-24?", script)


def timed_batch(processor: TracingProcessor, runs: int) -> tuple[float, float]:
    set_trace_processors([processor])
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(runs):
        one_run()
    return (time.perf_counter() - wall) / runs * 1000, (time.process_time() - cpu) / runs * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3, help="agent runs per timed batch")
    args = parser.parse_args()

    sink = Sink().start()
    dt = Dunetrace(endpoint=sink.url)
    quiet = Dunetrace(endpoint=sink.url, export="none")
    configs: dict[str, TracingProcessor] = {
        BASELINE: EmptyProcessor(),
        "dunetrace": DunetraceTracingProcessor(dt, agent_id="rooms"),
        "dt, no export": DunetraceTracingProcessor(quiet, agent_id="rooms"),
    }
    walls: dict[str, list[float]] = {name: [] for name in configs}
    cpus: dict[str, list[float]] = {name: [] for name in configs}
    try:
        for processor in configs.values():  # warm up imports, caches, the drain thread
            timed_batch(processor, 3)
        dt.flush(10)
        sent_before = sink.count()
        for round_no in range(args.rounds):
            order = list(configs.items())
            if round_no % 2:
                order.reverse()
            for name, processor in order:
                wall, cpu = timed_batch(processor, args.runs)
                walls[name].append(wall)
                cpus[name].append(cpu)
        dt.flush(10)
        delivered = sink.count() - sent_before
    finally:
        set_trace_processors([])
        dt.shutdown()
        quiet.shutdown()
        sink.stop()

    wall_base, cpu_base, best_base = (
        statistics.median(walls[BASELINE]),
        statistics.median(cpus[BASELINE]),
        min(walls[BASELINE]),
    )
    print(f"OpenAI Agents SDK agent, {TOOL_CALLS} tool calls + answer; {args.rounds} rounds x {args.runs} runs")
    print(f"{'':16}{'wall ms/run':>12}{'ratio':>8}{'CPU ms/run':>12}{'ratio':>8}{'best wall':>11}{'ratio':>8}")
    for name in configs:
        wall, cpu, best = statistics.median(walls[name]), statistics.median(cpus[name]), min(walls[name])
        print(
            f"{name:16}{wall:12.2f}{wall / wall_base:7.2f}x{cpu:12.2f}{cpu / cpu_base:7.2f}x"
            f"{best:11.2f}{best / best_base:7.2f}x"
        )
    print(f"events delivered to the sink: {delivered} of {args.rounds * args.runs * EVENTS_PER_RUN}")


if __name__ == "__main__":
    main()
