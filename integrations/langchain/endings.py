"""How a LangChain run ended, and the calls its end cut short.

A root call of an invoke ends normally, with an error, or with something
that is not the agent's failure: LangGraph's ``interrupt()`` (a pause for a
human), an iteration limit (LangGraph's ``GraphRecursionError``), a
cancellation (``task.cancel()``, an ``asyncio`` timeout, a
``KeyboardInterrupt``), a stream its reader closed. LangChain does not end
the calls in flight in every such case (langchain-core 1.x: a model call
cancelled under ``ainvoke`` gets no ``on_llm_error``; a stream closed
during a model call ends only the graph), so the translator answers each
call still open when its run ends, here, before the run's terminal event.
No framework import: exceptions are recognised by class.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import TYPE_CHECKING, Any, NamedTuple

from dunetrace.exit_reasons import ABANDONED, CANCELLED, INTERRUPTED, MAX_ITERATIONS

from .errors import is_recursion_limit

if TYPE_CHECKING:
    from collections.abc import Iterable

    from dunetrace import Run

__all__ = ["ABANDONED_CALLS", "Ending", "answer_cut", "ending_of", "is_cancellation", "is_interrupt"]

_CANCELLATIONS = (asyncio.CancelledError, concurrent.futures.CancelledError, KeyboardInterrupt)


class Ending(NamedTuple):
    """How a run ends, and how the calls its end cut short are answered."""

    exit_reason: str | None  # None: the usual (final_answer or completed), or run.errored
    error: BaseException | None  # the run's error: run.errored
    llm_finish: str  # finish_reason of a model call cut short
    tool_success: bool  # success of a tool call cut short


#: A run that never ended in LangChain (evicted, closed at shutdown), or a
#: stream its reader closed: the calls in flight were abandoned.
ABANDONED_CALLS = Ending(ABANDONED, None, "abandoned", False)


def is_interrupt(error: Any) -> bool:
    """LangGraph's ``GraphInterrupt`` (``interrupt()``), by class name."""
    return any(cls.__name__ == "GraphInterrupt" for cls in type(error).__mro__)


def is_cancellation(error: Any) -> bool:
    return isinstance(error, _CANCELLATIONS)


def ending_of(error: BaseException | None, control_flow: bool) -> Ending:
    """The ending of a root call that ended with ``error`` (None: normally).
    ``control_flow``: the error is LangGraph control flow (``GraphBubbleUp``)."""
    if error is None:
        return Ending(None, None, "abandoned", False)
    if is_interrupt(error):
        # A pause, not a failure: a call it cut short is answered as done
        # (the resuming run calls it again), so no failure detector counts it.
        return Ending(INTERRUPTED, None, "abandoned", True)
    if control_flow:
        return Ending(None, None, "abandoned", True)
    if is_recursion_limit(error):
        # LangGraph's GraphRecursionError: an iteration limit is an ending
        # of its own, not a failure of the agent (issue 16); the invoke
        # still raises it to the caller.
        return Ending(MAX_ITERATIONS, None, "abandoned", False)
    if isinstance(error, GeneratorExit):
        # The caller stopped reading a stream (LangGraph reports it as an
        # error of the root): the agent did not fail, it was stopped.
        return Ending(CANCELLED, None, "abandoned", False)
    if is_cancellation(error):
        return Ending(CANCELLED, None, "error", False)
    return Ending(None, error, "error", False)


class CutCall(NamedTuple):
    kind: str  # "llm", "tool" or "retriever"
    run: Run
    step: int
    name: str
    started_at: float


def answer_cut(calls: Iterable[CutCall], ending: Ending) -> None:
    """Answer each call its run's end cut short, in the order they began."""
    now = time.perf_counter()
    for call in sorted(calls, key=lambda c: c.step):
        latency = (now - call.started_at) * 1000
        if call.kind == "llm":
            call.run.llm_responded(latency_ms=latency, finish_reason=ending.llm_finish, step=call.step)
        elif call.kind == "tool":
            call.run.tool_responded(call.name, ending.tool_success, latency_ms=latency, step=call.step)
        else:  # a retrieval cut short found nothing
            call.run.retrieval_responded(call.name, 0, None, latency, step=call.step)
