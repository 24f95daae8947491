"""One wrapped client shared by threads and asyncio tasks: each call lands
in the run of the thread or task that made it, with its own step."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from typing import Any

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer

from .fakes import MODEL, FakeOpenAI, async_client, chat_chunks, chat_completion, sse, sync_client

MESSAGES = [{"role": "user", "content": "hi"}]


def _by_run(ingest: IngestServer, dt: Dunetrace) -> dict[str, list[dict[str, Any]]]:
    assert dt.flush(5)
    runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in ingest.events:
        runs[event["run_id"]].append(event)
    return runs


def test_threads_share_one_client(dt: Dunetrace, ingest: IngestServer) -> None:
    threads, calls = 6, 4
    fake = FakeOpenAI()
    fake.default = chat_completion("ok")
    client = dt.wrap_openai(sync_client(fake))
    barrier = threading.Barrier(threads)

    def agent(n: int) -> None:
        barrier.wait()
        with dt.run(f"agent-{n}"):
            for _ in range(calls):
                client.chat.completions.create(model=MODEL, messages=MESSAGES)

    workers = [threading.Thread(target=agent, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    runs = _by_run(ingest, dt)
    assert len(runs) == threads
    for events in runs.values():
        llm = [(e["event_type"], e["step_index"]) for e in events if e["event_type"].startswith("llm.")]
        assert llm == [(kind, step) for step in range(1, calls + 1) for kind in ("llm.called", "llm.responded")]
        assert len({e["agent_id"] for e in events}) == 1


async def test_overlapping_calls_in_one_run_keep_their_steps(dt: Dunetrace, ingest: IngestServer) -> None:
    fake = FakeOpenAI().reply(chat_completion("a"), sse(chat_chunks(["b", "c"])), chat_completion("d"))
    client = dt.wrap_openai(async_client(fake))

    async def streamed() -> str:
        stream = await client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])

    async with dt.run("parallel"):
        results = await asyncio.gather(
            client.chat.completions.create(model=MODEL, messages=MESSAGES),
            streamed(),
            client.chat.completions.create(model=MODEL, messages=MESSAGES),
        )
    assert results[1] == "bc"
    (events,) = _by_run(ingest, dt).values()
    called = {e["step_index"] for e in events if e["event_type"] == "llm.called"}
    responded = [e["step_index"] for e in events if e["event_type"] == "llm.responded"]
    assert called == {1, 2, 3}
    assert sorted(responded) == [1, 2, 3]
