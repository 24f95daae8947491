"""Order on the wire for LlamaIndex runs, in every path: ``run.started``
first, the terminal event last; and the run is current (``get_current_run()``)
inside the agent's tools and steps."""

from __future__ import annotations

from typing import Any

from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool
from workflows import Workflow, step
from workflows.events import StartEvent, StopEvent

import dunetrace

from .fakes import Call, ScriptedLLM
from .recorded import by_run, only, well_formed


async def test_the_run_is_current_inside_a_tool(instrumented: Any, received: Any) -> None:
    seen: list[str | None] = []

    def lookup(city: str) -> str:
        """Look up a city."""
        run = dunetrace.get_current_run()
        seen.append(run.run_id if run is not None else None)
        if run is not None:
            run.external_signal("CACHE_MISS", source="my-tool")
        return f"sunny in {city}"

    agent = FunctionAgent(
        tools=[FunctionTool.from_defaults(lookup)],
        llm=ScriptedLLM([Call("lookup", {"city": "oslo"}), "Sunny."]),
        streaming=False,
    )
    await agent.run("weather?")
    assert dunetrace.get_current_run() is None
    (events,) = by_run(received()).values()
    well_formed(events)
    assert seen == [events[0]["run_id"]]
    assert [e["payload"]["signal_name"] for e in only(events, "external.signal")] == ["CACHE_MISS"]


class Steps(Workflow):
    @step
    async def only_step(self, ev: StartEvent) -> StopEvent:
        run = dunetrace.get_current_run()
        return StopEvent(result=run.run_id if run is not None else None)


async def test_the_run_is_current_inside_a_workflow_step(instrumented: Any, received: Any) -> None:
    run_id = await Steps().run(topic="x")
    (events,) = by_run(received()).values()
    well_formed(events)
    assert run_id == events[0]["run_id"]
