"""One pair of handlers, many runs at once: asyncio tasks and threads never
mix their events."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from llama_index.core import Document, VectorStoreIndex
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.tools import FunctionTool

from .fakes import Call, ScriptedLLM
from .recorded import by_run, only, types, well_formed


def agent_for(i: int) -> FunctionAgent:
    """Agent ``i`` has its own tool, ``tool_<i>``, called ``i % 3 + 1`` times,
    so a run's events say which agent they came from."""

    async def work(n: int) -> str:
        await asyncio.sleep(0.001 * (n % 3))  # let the tasks interleave
        return f"done {n}"

    tool = FunctionTool.from_defaults(work, name=f"tool_{i}", description="work")
    calls = i % 3 + 1
    script = [Call(f"tool_{i}", {"n": k}) for k in range(calls)] + [f"answer {i}"]
    return FunctionAgent(tools=[tool], llm=ScriptedLLM(script), streaming=i % 2 == 0)


def check_agent_run(events: list[dict[str, Any]]) -> int:
    well_formed(events)
    (name,) = events[0]["payload"]["tools"]
    i = int(name.split("_")[1])
    assert [e["payload"]["tool_name"] for e in only(events, "tool.called")] == [name] * (i % 3 + 1)
    assert len(only(events, "llm.called")) == i % 3 + 2
    assert events[-1]["event_type"] == "run.completed"
    assert len({e["agent_version"] for e in events}) == 1
    return i


async def test_twenty_concurrent_agent_runs(instrumented: Any, received: Any) -> None:
    results = await asyncio.gather(*(agent_for(i).run(f"task {i}") for i in range(20)))
    assert [str(r) for r in results] == [f"answer {i}" for i in range(20)]
    runs = by_run(received())
    assert len(runs) == 20
    assert sorted(check_agent_run(events) for events in runs.values()) == list(range(20))
    assert all(e["parent_run_id"] is None for events in runs.values() for e in events)
    translator = instrumented.translator
    assert translator._spans == {} and len(translator._runs) == 0 and translator._llm == {}


async def run_agent(i: int) -> Any:
    # Workflow.run needs a running loop: call it inside a coroutine.
    return await agent_for(i).run(f"task {i}")


def test_runs_on_several_threads(instrumented: Any, received: Any) -> None:
    index = VectorStoreIndex.from_documents(
        [Document(text=f"fact {k}") for k in range(4)], embed_model=MockEmbedding(embed_dim=8)
    )
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for k in range(3):
                i = t * 3 + k
                asyncio.run(run_agent(i))
                engine = index.as_query_engine(llm=ScriptedLLM([f"rag {t}"]), similarity_top_k=t + 1)
                assert str(engine.query(f"question {t}")) == f"rag {t}"
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors

    runs = by_run(received())
    assert len(runs) == 24
    agents = [events for events in runs.values() if events[0]["payload"]["tools"]]
    rag = [events for events in runs.values() if not events[0]["payload"]["tools"]]
    assert sorted(check_agent_run(events) for events in agents) == list(range(12))
    assert len(rag) == 12
    for events in rag:
        well_formed(events)
        assert types(events) == [
            "run.started",
            "retrieval.called",
            "external.signal",  # EMBEDDING: the query embedded
            "retrieval.responded",
            "llm.called",
            "llm.responded",
            "run.completed",
        ]
    # similarity_top_k was the thread's number plus one: each retrieval kept its own count.
    counts = sorted(only(events, "retrieval.responded")[0]["payload"]["result_count"] for events in rag)
    assert counts == [1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert instrumented.translator._spans == {} and len(instrumented.translator._runs) == 0
