"""What the LlamaIndex integration costs an agent run.

The offline ``FunctionAgent`` of ``examples/llamaindex_agent.py`` (five tool
calls, then an answer: 6 LLM calls) runs:

* ``no handlers``    LlamaIndex as installed, nothing added to the dispatcher
* ``empty handlers`` a span handler and an event handler that do nothing:
  what LlamaIndex's own dispatch to one more handler costs
* ``dunetrace``      ``instrument(dt, ...)``, shipping over HTTP to a sink in
  another process on 127.0.0.1 (benchmarks/sink.py)
* ``dt, no export``  the same with ``Dunetrace(export="none")``: the
  integration and the run API without the transport, to tell the two apart

The three are interleaved round by round (order alternating), so drift in
machine load hits all alike. The table gives the median milliseconds per
agent run (wall clock and process CPU time), the fastest batch, and each
one's ratio to ``no handlers``. On a busy machine the wall clock mostly
measures the neighbours: compare the ``empty handlers`` row, which adds
almost nothing, to see how much.

    python benchmarks/bench_llamaindex.py [--rounds 100] [--runs 2]
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable
from typing import Any

from _harness import interleaved, print_table, timed
from _sink_process import Sink
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.span import BaseSpan
from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
from llama_index.core.tools import FunctionTool

from dunetrace import Dunetrace
from dunetrace.examples.llamaindex_agent import AGENT_ID, SYSTEM_PROMPT, build_llm, check_room
from dunetrace.integrations.llamaindex import instrument, uninstrument

TOOL_CALLS = 5
# run + llm pairs + tool pairs + the TOOL_LOOP signal of live detection (on by default)
EVENTS_PER_RUN = 2 + 2 * (TOOL_CALLS + 1) + 2 * TOOL_CALLS + 1


class EmptySpanHandler(BaseSpanHandler[BaseSpan]):
    def new_span(self, *args: Any, **kwargs: Any) -> None:
        return None

    def prepare_to_exit_span(self, *args: Any, **kwargs: Any) -> None:
        return None

    def prepare_to_drop_span(self, *args: Any, **kwargs: Any) -> None:
        return None


class EmptyEventHandler(BaseEventHandler):
    def handle(self, event: Any, **kwargs: Any) -> None:
        return None


def build_agent() -> FunctionAgent:
    plan = [("check_room", {"room_type": "sea-view", "night": "2026-12-24"})] * TOOL_CALLS
    return FunctionAgent(
        tools=[FunctionTool.from_defaults(check_room)],
        llm=build_llm(plan, "Sorry, no sea-view room is free that night."),
        system_prompt=SYSTEM_PROMPT,
        streaming=False,
    )


def configurations(dt: Dunetrace, quiet: Dunetrace) -> dict[str, tuple[Callable[[], None], Callable[[], None]]]:
    root = get_dispatcher()
    empty_span, empty_event = EmptySpanHandler(), EmptyEventHandler()

    def add_empty() -> None:
        root.add_span_handler(empty_span)
        root.add_event_handler(empty_event)

    def remove_empty() -> None:
        root.span_handlers = [h for h in root.span_handlers if h is not empty_span]
        root.event_handlers = [h for h in root.event_handlers if h is not empty_event]

    def nothing() -> None:
        return None

    return {
        "no handlers": (nothing, nothing),
        "empty handlers": (add_empty, remove_empty),
        "dunetrace": (lambda: instrument(dt, agent_id=AGENT_ID), uninstrument),
        "dt, no export": (lambda: instrument(quiet, agent_id=AGENT_ID), uninstrument),
    }


async def batch(agent: FunctionAgent, runs: int) -> None:
    for _ in range(runs):
        await agent.run("Is a sea-view room free on 2026-12-24?")


def timed_batch(loop: asyncio.AbstractEventLoop, agent: FunctionAgent, runs: int) -> tuple[float, float]:
    """(wall, CPU) milliseconds per run. One event loop serves every batch,
    so its set-up is not measured."""
    wall, cpu = timed(lambda: loop.run_until_complete(batch(agent, runs)), 1)
    return wall / runs, cpu / runs


def attached(loop: asyncio.AbstractEventLoop, agent: FunctionAgent, runs: int) -> Callable[..., tuple[float, float]]:
    """A batch timed with a configuration's handlers attached, detached after."""

    def measure(config: tuple[Callable[[], None], Callable[[], None]]) -> tuple[float, float]:
        attach, detach = config
        attach()
        try:
            return timed_batch(loop, agent, runs)
        finally:
            detach()

    return measure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--runs", type=int, default=2, help="agent runs per timed batch")
    args = parser.parse_args()

    sink = Sink().start()
    dt = Dunetrace(endpoint=sink.url)
    quiet = Dunetrace(endpoint=sink.url, export="none")
    agent = build_agent()
    configs = configurations(dt, quiet)
    loop = asyncio.new_event_loop()
    try:
        for attach, detach in configs.values():  # warm up imports, caches, the drain thread
            attach()
            timed_batch(loop, agent, 3)
            detach()
        dt.flush(10)
        sent_before = sink.count()
        walls, cpus = interleaved(configs, args.rounds, attached(loop, agent, args.runs))
        dt.flush(10)
        delivered = sink.count() - sent_before
    finally:
        loop.close()
        dt.shutdown()
        quiet.shutdown()
        sink.stop()

    print(f"LlamaIndex FunctionAgent, {TOOL_CALLS} tool calls + answer; {args.rounds} rounds x {args.runs} runs")
    print_table(configs, walls, cpus, "no handlers")
    print(f"events delivered to the sink: {delivered} of {args.rounds * args.runs * EVENTS_PER_RUN}")


if __name__ == "__main__":
    main()
