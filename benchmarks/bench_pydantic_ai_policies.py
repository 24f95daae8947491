"""What ``DunetraceCapability`` costs a Pydantic AI agent run.

The agent of ``bench_otel.py`` (a ``FunctionModel``: five calls of one tool,
then an answer; six model requests per run), reported through its own
``TracerProvider`` holding a ``DunetraceSpanProcessor`` (what
``instrument()`` installs), with no export, runs as:

* ``processor``           no capability: the baseline
* ``+ capability``        ``DunetraceCapability()``, no policy: it finds the
  run before each model request and has nothing to apply
* ``+ capability, acting`` a ``switch_model`` and an ``inject_prompt`` policy
  trigger at the third tool call of every run, so the last three requests go
  to another (equally scripted) model and one carries the injected message

Configurations are interleaved round by round (order alternating); the table
gives the median milliseconds per run (wall clock and process CPU time) and
each one's ratio to ``processor``, also as the median of each round's own
ratio (``paired``).

    python benchmarks/bench_pydantic_ai_policies.py [--rounds 40] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

os.environ.pop("OTEL_SDK_DISABLED", None)  # a disabled SDK would report nothing

from opentelemetry.sdk.trace import TracerProvider
from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
from pydantic_ai.models.function import AgentInfo, FunctionModel
from pydantic_ai.models.instrumented import InstrumentationSettings

from dunetrace import Dunetrace
from dunetrace.integrations.otel import DunetraceSpanProcessor
from dunetrace.integrations.pydantic_ai import DunetraceCapability

TOOL_CALLS = 5
BASELINE = "processor"


def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
    calls = sum(isinstance(p, ToolCallPart) for m in messages if isinstance(m, ModelResponse) for p in m.parts)
    if calls < TOOL_CALLS:
        return ModelResponse(parts=[ToolCallPart("check_room", {"room_type": "sea-view"})], finish_reason="tool_call")
    return ModelResponse(parts=[TextPart("Sorry, no sea-view room is free that night.")], finish_reason="stop")


def build_agent(client: Dunetrace, capability: bool) -> Agent[None, str]:
    provider = TracerProvider()
    processor = DunetraceSpanProcessor(client, agent_id="rooms")
    provider.add_span_processor(processor)
    capabilities: list[Any] = []
    if capability:
        backup = FunctionModel(model, model_name="backup")
        capabilities.append(DunetraceCapability(models={"backup": backup}, processor=processor))
    agent = Agent(
        FunctionModel(model, model_name="scripted"),
        system_prompt="You help hotel guests.",
        name="rooms",
        capabilities=capabilities,
    )
    agent.instrument = InstrumentationSettings(tracer_provider=provider)

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3, help="agent runs per timed batch")
    args = parser.parse_args()

    quiet = Dunetrace(export="none", detectors=True)
    acting = Dunetrace(export="none", detectors=True)
    acting.add_policy("cheaper", when={"tool_calls": 3}, then={"switch_model": "backup"})
    acting.add_policy("nudge", when={"tool_calls": 3}, then={"inject_prompt": "Answer with what you have."})
    agents = {
        BASELINE: build_agent(quiet, capability=False),
        "+ capability": build_agent(quiet, capability=True),
        "+ capability, acting": build_agent(acting, capability=True),
    }
    walls: dict[str, list[float]] = {name: [] for name in agents}
    cpus: dict[str, list[float]] = {name: [] for name in agents}
    try:
        for agent in agents.values():  # warm up imports and caches
            timed_batch(agent, 3)
        for round_no in range(args.rounds):
            order = list(agents.items())
            if round_no % 2:
                order.reverse()
            for name, agent in order:
                wall, cpu = timed_batch(agent, args.runs)
                walls[name].append(wall)
                cpus[name].append(cpu)
    finally:
        quiet.shutdown(timeout=1)
        acting.shutdown(timeout=1)

    wall_base, cpu_base = statistics.median(walls[BASELINE]), statistics.median(cpus[BASELINE])
    print(f"Pydantic AI agent, {TOOL_CALLS} tool calls + answer; {args.rounds} rounds x {args.runs} runs")
    print(f"{'':22}{'wall ms/run':>12}{'ratio':>8}{'paired':>8}{'CPU ms/run':>12}{'ratio':>8}{'paired':>8}")
    for name in agents:
        wall, cpu = statistics.median(walls[name]), statistics.median(cpus[name])
        paired_wall, paired_cpu = (
            statistics.median(v / b for v, b in zip(series[name], series[BASELINE], strict=True))
            for series in (walls, cpus)
        )
        print(
            f"{name:22}{wall:12.2f}{wall / wall_base:7.2f}x{paired_wall:7.2f}x"
            f"{cpu:12.2f}{cpu / cpu_base:7.2f}x{paired_cpu:7.2f}x"
        )
    print(f"medians over rounds; paired: the median of each round's own ratio to {BASELINE!r}")


if __name__ == "__main__":
    main()
