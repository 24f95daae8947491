"""Streams on real LangChain / LangGraph: read to the end, closed early
(``break``, ``close()``, ``aclose()``), dropped unread, never read, or read
on after their run ended. Each call is answered before its run's terminal
event (as ``partial`` or ``abandoned`` when it was cut short), never after
it, never not at all."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import pytest
from langchain.agents import create_agent

import dunetrace
from dunetrace import Dunetrace
from dunetrace.exit_reasons import ABANDONED, CANCELLED
from dunetrace.integrations.langchain import DunetraceCallbackHandler

from .conftest import delivered, runs_of, well_formed
from .fakes import ScriptedChatModel, call, question, search

LONG = "a streamed answer, long enough to come in many chunks of four characters"


class SlowStreamingModel(ScriptedChatModel):
    """Streams its reply one chunk per loop turn under astream, so a reader
    can stop in the middle of a model call."""

    async def _astream(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> Any:
        for chunk in self._stream(messages, stop, None, **kwargs):
            await asyncio.sleep(0.01)
            yield chunk


def the_run(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    (run,) = runs_of(events).values()
    well_formed(run)  # started first, the terminal last, every call answered
    return run


def finish_reasons(run: list[dict[str, Any]]) -> list[str]:
    return [e["payload"].get("finish_reason") for e in run if e["event_type"] == "llm.responded"]


def test_a_model_stream_closed_early(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    model = ScriptedChatModel(script=[LONG])
    for _chunk in model.stream("hi", config={"callbacks": [handler]}):
        break  # the generator is closed when the loop drops it
    run = the_run(delivered(dt, ingest))
    assert finish_reasons(run) == ["partial"]
    assert run[-1]["payload"]["exit_reason"] == CANCELLED
    assert handler.translator.live() == (0, 0)


async def test_a_model_astream_closed_early(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    stream = ScriptedChatModel(script=[LONG]).astream("hi", config={"callbacks": [handler]})
    await stream.__anext__()
    await stream.aclose()
    run = the_run(delivered(dt, ingest))
    assert finish_reasons(run) == ["partial"]
    assert handler.translator.live() == (0, 0)


@pytest.mark.parametrize("how", ["aclose", "break", "dropped"])
async def test_an_agent_astream_stopped_during_a_model_call(
    how: str, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    graph = create_agent(SlowStreamingModel(script=[LONG]), [search])
    stream = graph.astream(question(), config={"callbacks": [handler]}, stream_mode="messages")
    if how == "break":
        async for _chunk in stream:
            break
        await stream.aclose()  # what ``async with aclosing(...)`` does; a bare break leaves it to the GC
    else:
        await stream.__anext__()  # inside the model's token stream now
        if how == "aclose":
            await stream.aclose()
        else:
            del stream  # never read again: the loop's async generator hooks close it
            for _ in range(20):
                gc.collect()
                await asyncio.sleep(0.01)
                if handler.translator.live() == (0, 0):
                    break
    run = the_run(delivered(dt, ingest))
    assert finish_reasons(run) == ["abandoned"]
    assert run[-1]["payload"]["exit_reason"] == CANCELLED
    assert handler.translator.live() == (0, 0)


def test_an_agent_stream_closed_after_a_step(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    graph = create_agent(ScriptedChatModel(script=[[call("search", query="q")], "sunny"]), [search])
    stream = graph.stream(question(), config={"callbacks": [handler]}, stream_mode="updates")
    next(stream)
    stream.close()
    run = the_run(delivered(dt, ingest))
    assert run[-1]["payload"]["exit_reason"] == CANCELLED
    assert handler.translator.live() == (0, 0)


def test_a_stream_never_read_reports_nothing_and_holds_nothing(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    graph = create_agent(ScriptedChatModel(script=["x"]), [search])
    stream = graph.stream(question(), config={"callbacks": [handler]})
    model_stream = ScriptedChatModel(script=["x"]).stream("hi", config={"callbacks": [handler]})
    del stream, model_stream
    gc.collect()
    dt.flush()
    # LangChain starts nothing until the first read: no call was made.
    assert ingest.events == []
    assert handler.translator.live() == (0, 0)


def test_a_stream_read_on_after_the_users_run_ended(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    model = ScriptedChatModel(script=[LONG])
    with dt.run("outer", user_input="q"):
        stream = model.stream("hi", config={"callbacks": [handler]})
        first = next(stream)
    rest = list(stream)  # read after the run's end
    assert first.content + "".join(str(c.content) for c in rest) == LONG
    run = the_run(delivered(dt, ingest))
    assert [e["event_type"] for e in run] == ["run.started", "llm.called", "llm.responded", "run.completed"]
    assert finish_reasons(run) == ["abandoned"]
    assert handler.translator.live() == (0, 0)


async def test_an_astream_read_on_after_the_users_run_ended(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    graph = create_agent(SlowStreamingModel(script=[LONG]), [search])
    async with dt.run("outer", user_input="q"):
        stream = graph.astream(question(), config={"callbacks": [handler]}, stream_mode="messages")
        await stream.__anext__()
    _ = [chunk async for chunk in stream]
    run = the_run(delivered(dt, ingest))
    assert finish_reasons(run) == ["abandoned"]
    assert run[-1]["event_type"] == "run.completed"
    assert handler.translator.live() == (0, 0)


def test_a_stream_open_at_shutdown(ingest: Any) -> None:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    handler = DunetraceCallbackHandler(client)
    stream = ScriptedChatModel(script=[LONG]).stream("hi", config={"callbacks": [handler]})
    next(stream)
    assert client.shutdown(timeout=5)
    rest = list(stream)  # read on after the client closed: nothing more is reported
    assert rest
    run = the_run(ingest.events)
    assert finish_reasons(run) == ["abandoned"]
    assert run[-1]["payload"]["exit_reason"] == ABANDONED
    assert handler.translator.live() == (0, 0)
    assert dunetrace.get_current_run() is None


async def test_what_an_agent_does_after_the_users_run_ended_is_not_a_new_run(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    script = [[call("search", query="q")], [call("search", query="r")], LONG]
    graph = create_agent(SlowStreamingModel(script=script), [search])
    async with dt.run("outer", user_input="q"):
        stream = graph.astream(question(), config={"callbacks": [handler]}, stream_mode="messages")
        await stream.__anext__()
    # The agent goes on (two tool calls, two model calls) after its run ended.
    _ = [chunk async for chunk in stream]
    run = the_run(delivered(dt, ingest))
    assert [e["event_type"] for e in run] == ["run.started", "llm.called", "llm.responded", "run.completed"]
    assert handler.translator.live() == (0, 0)


def test_streams_nobody_finished_are_evicted_with_their_calls_answered(dt: Dunetrace, ingest: Any) -> None:
    handler = DunetraceCallbackHandler(dt, max_live_runs=3)
    model = ScriptedChatModel(script=[LONG])
    graph = create_agent(ScriptedChatModel(script=[[call("search", query="q")], "sunny"]), [search])
    streams: list[Any] = []
    for _ in range(5):  # each read to the middle of its model call, then left
        stream = model.stream("hi", config={"callbacks": [handler]})
        next(stream)
        streams.append(stream)
    assert handler.translator.live() == (3, 3)
    for stream in streams[:2]:  # the evicted ones read on: nothing more of theirs is reported
        assert list(stream)
    graph.invoke(question(), config={"callbacks": [handler]})  # evicts one more; a run of its own
    for stream in streams[2:]:  # one evicted, two read to their end
        assert list(stream)
    runs = list(runs_of(delivered(dt, ingest, runs=6)).values())
    assert len(runs) == 6
    for run in runs:
        well_formed(run)
    assert [finish_reasons(run) for run in runs[:5]] == [["abandoned"]] * 3 + [["stop"]] * 2
    assert [run[-1]["payload"]["exit_reason"] for run in runs[:5]] == [ABANDONED] * 3 + ["final_answer"] * 2
    assert handler.translator.live() == (0, 0)
