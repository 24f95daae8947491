"""Retries in LlamaIndex 0.14: a workflow step with a ``retry_policy``
runs again after an exception. Every attempt's model call is a call of the
same run, failed or answered; never a run of its own."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.llms import ChatMessage
from workflows import Workflow, step
from workflows.events import StartEvent, StopEvent
from workflows.retry_policy import ConstantDelayRetryPolicy

from dunetrace.exit_reasons import FINAL_ANSWER

from .fakes import ScriptedLLM
from .recorded import by_run, only, well_formed


class Summarise(Workflow):
    def __init__(self, llm: ScriptedLLM) -> None:
        super().__init__()
        self.llm = llm

    @step(retry_policy=ConstantDelayRetryPolicy(maximum_attempts=3, delay=0))
    async def summarise(self, ev: StartEvent) -> StopEvent:
        answer = await self.llm.achat([ChatMessage(role="user", content=str(ev.get("text")))])
        return StopEvent(result=answer.message.content)


async def test_retried_model_calls_are_calls_of_one_run(instrumented: Any, received: Any) -> None:
    llm = ScriptedLLM([ConnectionError("reset"), ConnectionError("reset"), "Short."])
    assert await Summarise(llm).run(text="a long text") == "Short."
    (events,) = by_run(received()).values()
    well_formed(events)
    reasons = [e["payload"]["finish_reason"] for e in only(events, "llm.responded")]
    assert reasons == ["error", "error", "stop"]
    assert events[0]["payload"]["model"] == "scripted-1"
    assert events[-1]["payload"]["exit_reason"] == FINAL_ANSWER


async def test_retries_that_run_out_end_the_run_errored_with_the_last_error(instrumented: Any, received: Any) -> None:
    llm = ScriptedLLM([ConnectionError("reset")] * 3)
    with pytest.raises(ConnectionError):
        await Summarise(llm).run(text="a long text")
    (events,) = by_run(received()).values()
    well_formed(events)
    assert [e["payload"]["finish_reason"] for e in only(events, "llm.responded")] == ["error"] * 3
    assert events[-1]["event_type"] == "run.errored" and events[-1]["payload"]["error_type"] == "ConnectionError"
