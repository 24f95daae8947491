"""How a ``with dt.run()`` block and a ``dt.trace`` function end when they
are cancelled, and the seam that lets a run's end answer calls still open
(Run.before_end)."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import pytest

from dunetrace import Dunetrace
from dunetrace.exit_reasons import CANCELLED, FINAL_ANSWER
from tests.ingest_server import IngestServer


def _terminal(ingest: IngestServer, dt: Dunetrace) -> dict[str, Any]:
    assert dt.flush(5)
    return ingest.events[-1]


@pytest.mark.parametrize("cancellation", [KeyboardInterrupt, asyncio.CancelledError, concurrent.futures.CancelledError])
def test_a_with_block_ended_by_a_cancellation_completes_cancelled(
    dt: Dunetrace, ingest: IngestServer, cancellation: type[BaseException]
) -> None:
    with pytest.raises(cancellation), dt.run("agent"):
        raise cancellation()
    terminal = _terminal(ingest, dt)
    assert terminal["event_type"] == "run.completed"
    assert terminal["payload"]["exit_reason"] == CANCELLED


async def test_a_traced_function_cancelled_by_wait_for_completes_cancelled(dt: Dunetrace, ingest: IngestServer) -> None:
    @dt.trace
    async def agent(question: str) -> str:
        await asyncio.sleep(30)
        return "never"

    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(agent("hi"), 0.1)
    terminal = _terminal(ingest, dt)
    assert (terminal["event_type"], terminal["payload"]["exit_reason"]) == ("run.completed", CANCELLED)


async def test_a_task_cancelled_inside_async_with_completes_cancelled(dt: Dunetrace, ingest: IngestServer) -> None:
    started = asyncio.Event()

    async def agent() -> None:
        async with dt.run("agent") as run:
            run.final_answer()  # even an answer noted before: the run was stopped
            started.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(agent())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _terminal(ingest, dt)["payload"]["exit_reason"] == CANCELLED


def test_an_error_still_errors_and_an_answer_still_answers(dt: Dunetrace, ingest: IngestServer) -> None:
    with pytest.raises(ValueError), dt.run("agent"):
        raise ValueError("bad")
    errored = _terminal(ingest, dt)
    assert (errored["event_type"], errored["payload"]["error_type"]) == ("run.errored", "ValueError")
    with dt.run("agent") as run:
        run.final_answer()
    assert _terminal(ingest, dt)["payload"]["exit_reason"] == FINAL_ANSWER


def test_before_end_answers_open_calls_before_the_terminal(dt: Dunetrace, ingest: IngestServer) -> None:
    with dt.run("agent") as run:
        open_step = run.llm_called("m")
        closed_step = run.llm_called("m")

        def answer_open() -> None:
            run.llm_responded(latency_ms=1.0, finish_reason="abandoned", step=open_step)

        def never() -> None:
            raise AssertionError("forgotten, so never called")

        run.before_end("open", answer_open)
        run.before_end("closed", never)
        run.llm_responded(latency_ms=1.0, finish_reason="stop", step=closed_step)
        run.before_end("closed", None)
    run.before_end("late", never)  # the run has ended: not kept, never called
    assert dt.flush(5)
    kinds = [(e["event_type"], e["payload"].get("finish_reason")) for e in ingest.events]
    assert kinds[-2:] == [("llm.responded", "abandoned"), ("run.completed", None)]


def test_llm_responded_error_carries_the_exception_class(dt: Dunetrace, ingest: IngestServer) -> None:
    with dt.run("agent") as run:
        step = run.llm_called("m")
        run.llm_responded(latency_ms=1.0, finish_reason="error", step=step, error=TimeoutError("secret text"))
    assert dt.flush(5)
    (answer,) = [e["payload"] for e in ingest.events if e["event_type"] == "llm.responded"]
    assert answer["error_type"] == "TimeoutError"
    assert "secret text" not in str(ingest.events)
