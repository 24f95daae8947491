"""What the OpenAI Agents SDK integration costs an agent run.

The offline agent of ``examples/openai_agents_agent.py`` (the SDK's
Responses model on a scripted ``httpx.MockTransport``: five calls of one
tool, then an answer) runs with the SDK's trace processors set to:

* ``empty processor`` a ``TracingProcessor`` that does nothing, and the
  SDK's own runner: the baseline (the SDK builds its spans whatever is
  registered)
* ``dunetrace``       what ``instrument()`` installs: ``DunetraceTracingProcessor``,
  shipping over HTTP to a sink in another process on 127.0.0.1
  (benchmarks/sink.py), and ``DunetraceAgentRunner`` around the SDK's
  runner (the live policies' hooks, input filter and model choice)
* ``processor only``  the same processor with the SDK's own runner
* ``dt, no export``   ``dunetrace`` with ``Dunetrace(export="none")``

Interleaved round by round (order alternating); the table gives the median
milliseconds per run (wall clock and process CPU time), the fastest batch,
and each one's ratio to ``empty processor``.

    python benchmarks/bench_openai_agents.py [--rounds 40] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
from typing import Any

os.environ.pop("OPENAI_API_KEY", None)

from _harness import interleaved, print_table, timed
from _sink_process import Sink
from agents import set_trace_processors
from agents.run import AgentRunner, get_default_agent_runner, set_default_agent_runner
from agents.tracing.processor_interface import TracingProcessor

from dunetrace import Dunetrace
from dunetrace.examples.openai_agents_agent import ScriptedResponses, ask
from dunetrace.integrations.openai_agents import DunetraceAgentRunner, DunetraceTracingProcessor

TOOL_CALLS = 5
# run + model pairs + tool pairs + the TOOL_LOOP signal of live detection (on by default)
EVENTS_PER_RUN = 2 + 2 * (TOOL_CALLS + 1) + 2 * TOOL_CALLS + 1
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


def timed_batch(setup: tuple[TracingProcessor, AgentRunner], runs: int) -> tuple[float, float]:
    processor, runner = setup
    set_trace_processors([processor])
    set_default_agent_runner(runner)
    return timed(one_run, runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3, help="agent runs per timed batch")
    args = parser.parse_args()

    sink = Sink().start()
    dt = Dunetrace(endpoint=sink.url)
    quiet = Dunetrace(endpoint=sink.url, export="none")
    sdk_runner = get_default_agent_runner()
    shipping = DunetraceTracingProcessor(dt, agent_id="rooms")
    not_shipping = DunetraceTracingProcessor(quiet, agent_id="rooms")
    configs: dict[str, tuple[TracingProcessor, AgentRunner]] = {
        BASELINE: (EmptyProcessor(), sdk_runner),
        "dunetrace": (shipping, DunetraceAgentRunner(sdk_runner, shipping)),
        "processor only": (shipping, sdk_runner),
        "dt, no export": (not_shipping, DunetraceAgentRunner(sdk_runner, not_shipping)),
    }
    try:
        for setup in configs.values():  # warm up imports, caches, the drain thread
            timed_batch(setup, 3)
        dt.flush(10)
        sent_before = sink.count()
        walls, cpus = interleaved(configs, args.rounds, lambda setup: timed_batch(setup, args.runs))
        dt.flush(10)
        delivered = sink.count() - sent_before
    finally:
        set_trace_processors([])
        set_default_agent_runner(sdk_runner)
        dt.shutdown()
        quiet.shutdown()
        sink.stop()

    print(f"OpenAI Agents SDK agent, {TOOL_CALLS} tool calls + answer; {args.rounds} rounds x {args.runs} runs")
    print_table(configs, walls, cpus, BASELINE)
    shipping_configs = 2  # "dunetrace" and "processor only"
    expected = shipping_configs * args.rounds * args.runs * EVENTS_PER_RUN
    print(f"events delivered to the sink: {delivered} of {expected}")


if __name__ == "__main__":
    main()
