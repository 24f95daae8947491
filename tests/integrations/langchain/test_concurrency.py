"""One handler shared by many threads and tasks keeps their runs apart."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import dunetrace
from dunetrace import Dunetrace
from dunetrace.integrations.langchain import DunetraceCallbackHandler

from .conftest import delivered, runs_of, shape, well_formed
from .fakes import agent, call, question

SCRIPT = [[call("search", query="a")], [call("calculator", expression="2+2")], [call("search", query="b")], "done"]
SHAPE = [
    ("run.started", 0, None),
    ("llm.called", 1, None),
    ("llm.responded", 1, None),
    ("tool.called", 2, "search"),
    ("tool.responded", 2, "search"),
    ("llm.called", 3, None),
    ("llm.responded", 3, None),
    ("tool.called", 4, "calculator"),
    ("tool.responded", 4, "calculator"),
    ("llm.called", 5, None),
    ("llm.responded", 5, None),
    ("tool.called", 6, "search"),
    ("tool.responded", 6, "search"),
    ("llm.called", 7, None),
    ("llm.responded", 7, None),
    ("run.completed", 7, "final_answer"),
]


def check_runs(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler, n: int, inputs: list[str]) -> None:
    by_run = runs_of(delivered(dt, ingest, runs=n))
    assert len(by_run) == n
    hashes = set()
    for events in by_run.values():
        assert shape(events) == SHAPE  # complete, in order, nothing of another run
        well_formed(events)
        hashes.add(events[0]["payload"]["input_hash"])
    # Each run started from its own input: none were merged or swapped.
    assert hashes == {dt.hasher.value(text) for text in inputs}
    assert handler.translator.live() == (0, 0)


def test_sixteen_threads(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    graph = agent(SCRIPT)
    inputs = [f"question {i}" for i in range(16)]
    barrier = threading.Barrier(16)
    errors: list[BaseException] = []
    seen: dict[str, Any] = {}

    def work(text: str) -> None:
        try:
            barrier.wait()
            result = graph.invoke(question(text), config={"callbacks": [handler]})
            assert result["messages"][-1].content == "done"
            seen[text] = dunetrace.get_current_run()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(text,)) for text in inputs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert seen == dict.fromkeys(inputs)  # no run leaked into a caller's thread
    check_runs(dt, ingest, handler, 16, inputs)


async def test_fifty_gathered_ainvokes(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    graph = agent(SCRIPT)
    inputs = [f"question {i}" for i in range(50)]

    async def one(text: str) -> None:
        result = await graph.ainvoke(question(text), config={"callbacks": [handler]})
        assert result["messages"][-1].content == "done"
        assert dunetrace.get_current_run() is None

    await asyncio.gather(*(one(text) for text in inputs))
    check_runs(dt, ingest, handler, 50, inputs)


async def test_each_tool_sees_its_own_run(dt: Dunetrace, ingest: Any) -> None:
    from langchain_core.tools import tool

    handler = DunetraceCallbackHandler(dt, agent_id="probe")
    seen: list[tuple[str, str]] = []

    @tool
    async def whoami(tag: str) -> str:
        """Report the current run."""
        await asyncio.sleep(0.001)  # let the other tasks interleave
        run = dunetrace.get_current_run()
        assert run is not None
        seen.append((tag, run.run_id))
        return tag

    @tool
    def whoami_sync(tag: str) -> str:
        """Report the current run, from an executor thread."""
        run = dunetrace.get_current_run()
        assert run is not None
        seen.append((tag, run.run_id))
        return tag

    async def one(i: int) -> None:
        script = [[call("whoami", tag=f"a{i}")], [call("whoami_sync", tag=f"s{i}")], "done"]
        await agent(script, [whoami, whoami_sync]).ainvoke(question(f"q{i}"), config={"callbacks": [handler]})

    await asyncio.gather(*(one(i) for i in range(20)))
    by_run = runs_of(delivered(dt, ingest, runs=20))
    input_of = {events[0]["payload"]["input_hash"]: run_id for run_id, events in by_run.items()}
    assert len(seen) == 40
    for tag, run_id in seen:
        assert input_of[dt.hasher.value(f"q{tag[1:]}")] == run_id
