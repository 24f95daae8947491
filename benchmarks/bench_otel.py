"""What the OpenTelemetry span receiver costs an agent run.

A Pydantic AI agent with its own OpenTelemetry instrumentation on (its model
a ``FunctionModel``: five calls of one tool, then an answer; 6 model spans,
5 tool spans and the agent span per run) runs with a ``TracerProvider``
holding:

* ``empty processor`` a ``SpanProcessor`` that does nothing: the baseline,
  what the spans themselves cost (Pydantic AI builds them whatever is added)
* ``dunetrace``       a ``DunetraceSpanProcessor``, shipping over HTTP to a
  sink in another process on 127.0.0.1 (benchmarks/sink.py)
* ``dt, no export``   the same with ``Dunetrace(export="none")``: the
  receiver and the run API without the transport

and, for scale, ``not traced``: the same agent with instrumentation off.
Configurations are interleaved round by round (order alternating), so drift
in machine load hits all alike. The table gives the median milliseconds per
run (wall clock and process CPU time), the fastest batch, and each one's
ratio to ``empty processor``, also as the median of each round's own ratio
(``paired``), which load drifting between rounds does not move.

    python benchmarks/bench_otel.py [--rounds 60] [--runs 3]

``python benchmarks/bench_otel.py plain`` times spans that are not GenAI
(an HTTP span with a database span inside, as a web app makes them) through
a provider with the empty processor and one with a DunetraceSpanProcessor,
interleaved: what the receiver costs the rest of an app's tracing.

``python benchmarks/bench_otel.py export`` times a run of the run API (ten
tool calls and ten model calls) with and without ``export_to`` to a provider
whose only processor does nothing: what turning runs into spans costs the
agent's thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

os.environ.pop("OTEL_SDK_DISABLED", None)  # a disabled SDK would measure nothing

from _sink_process import Sink
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.instrumented import InstrumentationSettings

from dunetrace import Dunetrace
from dunetrace.integrations.otel import DunetraceSpanProcessor

TOOL_CALLS = 5
# run.started, the model and tool call pairs, run.completed, and the live
# TOOL_LOOP signal (one tool called five times; live detection is on, as a
# user's client has it by default)
EVENTS_PER_RUN = 2 + 2 * (TOOL_CALLS + 1) + 2 * TOOL_CALLS + 1
BASELINE = "empty processor"


def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    calls = sum(isinstance(p, ToolCallPart) for m in messages if isinstance(m, ModelResponse) for p in m.parts)
    if calls < TOOL_CALLS:
        return ModelResponse(parts=[ToolCallPart("check_room", {"room_type": "sea-view"})], finish_reason="tool_call")
    return ModelResponse(parts=[TextPart("Sorry, no sea-view room is free that night.")], finish_reason="stop")


def build_agent(processor: SpanProcessor | None) -> Agent[None, str]:
    agent = Agent(FunctionModel(model, model_name="scripted"), system_prompt="You help hotel guests.", name="rooms")
    if processor is not None:
        provider = TracerProvider()
        provider.add_span_processor(processor)
        agent.instrument = InstrumentationSettings(tracer_provider=provider)
    else:
        agent.instrument = False

    @agent.tool_plain
    def check_room(room_type: str) -> str:
        """Whether a room type is free."""
        return f"no {room_type} room is free"

    return agent


def timed_batch(agent: Agent[None, str], runs: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(runs):
        agent.run_sync("Is a sea-view room free on 2026-12-24?")
    return (time.perf_counter() - wall) / runs * 1000, (time.process_time() - cpu) / runs * 1000


def plain(rounds: int = 30, spans: int = 2000) -> None:
    quiet = Dunetrace(endpoint="http://127.0.0.1:9", export="none")
    tracers = {}
    for name, processor in ((BASELINE, SpanProcessor()), ("dunetrace", DunetraceSpanProcessor(quiet))):
        provider = TracerProvider()
        provider.add_span_processor(processor)
        tracers[name] = provider.get_tracer("app")
    timings: dict[str, list[float]] = {name: [] for name in tracers}
    for round_no in range(rounds):
        order = list(tracers.items()) if round_no % 2 else list(reversed(tracers.items()))
        for name, tracer in order:
            started = time.process_time()  # CPU: this machine's wall clock is too noisy per span
            for _ in range(spans // 2):
                # The second span starts inside the first: its child.
                with (
                    tracer.start_as_current_span("GET /orders", attributes={"http.request.method": "GET"}),
                    tracer.start_as_current_span("SELECT orders", attributes={"db.system.name": "postgresql"}),
                ):
                    pass
            timings[name].append((time.process_time() - started) / spans * 1e6)
    quiet.shutdown()
    base = statistics.median(timings[BASELINE])
    print(f"spans that are not GenAI; {rounds} rounds x {spans} spans")
    for name, values in timings.items():
        median = statistics.median(values)
        print(f"{name:16}{median:8.2f} us CPU/span{median / base:7.2f}x   (+{median - base:.2f} us)")


def export(rounds: int = 30, runs: int = 50) -> None:
    from dunetrace.integrations.otel import export_to

    plain_client = Dunetrace(endpoint="http://127.0.0.1:9", export="none")
    exported_client = Dunetrace(endpoint="http://127.0.0.1:9", export="none")
    provider = TracerProvider()
    provider.add_span_processor(SpanProcessor())
    export_to(exported_client, provider)

    def batch(dt: Dunetrace) -> tuple[float, float]:
        """(the agent thread's CPU, the process's CPU with the spans made), us per run."""
        thread, process = time.thread_time(), time.process_time()
        for _ in range(runs):
            with dt.run("bench", user_input="q", model="m", tools=["search"]) as run:
                for _ in range(10):
                    run.llm_responded(5, 1.0, "tool_calls", 10, step=run.llm_called("m", prompt_tokens=100))
                    run.tool_responded("search", True, 12, 1.0, step=run.tool_called("search", {"q": 1}))
        thread = time.thread_time() - thread
        dt.flush(10)  # the spans, made on the drain thread or here
        return thread / runs * 1e6, (time.process_time() - process) / runs * 1e6

    timings: dict[str, list[tuple[float, float]]] = {"run API": [], "with export_to": []}
    for round_no in range(rounds):
        order = [("run API", plain_client), ("with export_to", exported_client)]
        for name, client in order if round_no % 2 else reversed(order):
            timings[name].append(batch(client))
    plain_client.shutdown()
    exported_client.shutdown()
    base = [statistics.median(t[i] for t in timings["run API"]) for i in (0, 1)]
    print(f"a run of 42 events (10 model and 10 tool calls); {rounds} rounds x {runs} runs")
    print(f"{'':16}{'agent thread CPU us/run':>24}{'ratio':>8}{'process CPU us/run':>20}{'ratio':>8}")
    for name, values in timings.items():
        agent, process = (statistics.median(t[i] for t in values) for i in (0, 1))
        print(f"{name:16}{agent:24.1f}{agent / base[0]:7.2f}x{process:20.1f}{process / base[1]:7.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=["agent", "plain", "export"], default="agent")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--runs", type=int, default=3, help="agent runs per timed batch")
    args = parser.parse_args()
    if args.mode == "plain":
        plain()
        return
    if args.mode == "export":
        export()
        return

    sink = Sink().start()
    dt = Dunetrace(endpoint=sink.url, detectors=True)
    quiet = Dunetrace(endpoint=sink.url, export="none", detectors=True)
    agents: dict[str, Any] = {
        "not traced": build_agent(None),
        BASELINE: build_agent(SpanProcessor()),
        "dunetrace": build_agent(DunetraceSpanProcessor(dt, agent_id="rooms")),
        "dt, no export": build_agent(DunetraceSpanProcessor(quiet, agent_id="rooms")),
    }
    walls: dict[str, list[float]] = {name: [] for name in agents}
    cpus: dict[str, list[float]] = {name: [] for name in agents}
    try:
        for agent in agents.values():  # warm up imports, caches, the drain thread
            timed_batch(agent, 3)
        dt.flush(10)
        sent_before = sink.count()
        for round_no in range(args.rounds):
            order = list(agents.items())
            if round_no % 2:
                order.reverse()
            for name, agent in order:
                wall, cpu = timed_batch(agent, args.runs)
                walls[name].append(wall)
                cpus[name].append(cpu)
        dt.flush(10)
        delivered = sink.count() - sent_before
    finally:
        dt.shutdown()
        quiet.shutdown()
        sink.stop()

    wall_base, cpu_base, best_base = (
        statistics.median(walls[BASELINE]),
        statistics.median(cpus[BASELINE]),
        min(walls[BASELINE]),
    )
    print(f"Pydantic AI agent, {TOOL_CALLS} tool calls + answer; {args.rounds} rounds x {args.runs} runs")
    print(
        f"{'':16}{'wall ms/run':>12}{'ratio':>8}{'paired':>8}{'CPU ms/run':>12}{'ratio':>8}{'paired':>8}"
        f"{'best wall':>11}{'ratio':>8}"
    )
    for name in agents:
        wall, cpu, best = statistics.median(walls[name]), statistics.median(cpus[name]), min(walls[name])
        # Each round's own ratio: load that drifts between rounds cancels out.
        paired_wall, paired_cpu = (
            statistics.median(v / b for v, b in zip(series[name], series[BASELINE], strict=True))
            for series in (walls, cpus)
        )
        print(
            f"{name:16}{wall:12.2f}{wall / wall_base:7.2f}x{paired_wall:7.2f}x{cpu:12.2f}{cpu / cpu_base:7.2f}x"
            f"{paired_cpu:7.2f}x{best:11.2f}{best / best_base:7.2f}x"
        )
    print("medians over rounds; paired: the median of each round's own ratio to the empty processor")
    print(f"events delivered to the sink: {delivered} of {args.rounds * args.runs * EVENTS_PER_RUN}")


if __name__ == "__main__":
    main()
