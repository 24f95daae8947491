"""How a LlamaIndex run ends when it does not answer: the iteration limit
(``max_iterations``) is an exit reason of its own, and an exception carries
its real class."""

from __future__ import annotations

from typing import Any

import pytest
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import FunctionTool
from workflows import Workflow, step
from workflows.errors import WorkflowRuntimeError
from workflows.events import StartEvent, StopEvent

from dunetrace.exit_reasons import MAX_ITERATIONS

from .fakes import Call, ScriptedLLM
from .recorded import by_run, only, well_formed


def lookup(city: str) -> str:
    """Look up the weather in a city."""
    return f"sunny in {city}"


async def test_the_iteration_limit_is_its_own_exit_reason(instrumented: Any, received: Any) -> None:
    llm = ScriptedLLM([Call("lookup", {"city": "paris"})], repeat=True)
    agent = FunctionAgent(tools=[FunctionTool.from_defaults(lookup)], llm=llm, streaming=False)
    with pytest.raises(WorkflowRuntimeError, match="Max iterations"):
        await agent.run("weather?", max_iterations=3)
    (events,) = by_run(received()).values()
    well_formed(events)
    assert events[-1]["event_type"] == "run.completed"
    assert events[-1]["payload"]["exit_reason"] == MAX_ITERATIONS
    assert len(only(events, "tool.called")) >= 2


class QuotaExceededError(Exception):
    pass


class Billing(Workflow):
    @step
    async def charge(self, ev: StartEvent) -> StopEvent:
        raise QuotaExceededError("account 42 is over quota")


async def test_a_workflow_error_carries_its_own_class(instrumented: Any, received: Any) -> None:
    with pytest.raises(QuotaExceededError):
        await Billing().run(account="42")
    (events,) = by_run(received()).values()
    well_formed(events)
    assert events[-1]["event_type"] == "run.errored"
    assert events[-1]["payload"]["error_type"] == "QuotaExceededError"
    assert "over quota" not in str(events[-1])


async def test_a_model_error_carries_its_own_class(instrumented: Any, received: Any) -> None:
    llm = ScriptedLLM([TimeoutError("provider timed out")])
    with pytest.raises(TimeoutError):
        await FunctionAgent(tools=[FunctionTool.from_defaults(lookup)], llm=llm, streaming=False).run("weather?")
    (events,) = by_run(received()).values()
    well_formed(events)
    assert only(events, "llm.responded")[0]["payload"]["finish_reason"] == "error"
    assert events[-1]["payload"]["error_type"] == "TimeoutError"


def api_error(kind: str, status: int) -> Exception:
    """A real status error: the ``openai`` SDK's (what LlamaIndex's OpenAI
    LLM lets through) or ``httpx``'s (a provider called over plain httpx)."""
    import httpx

    request = httpx.Request("POST", "https://api.example.com/v1/chat/completions")
    response = httpx.Response(status, request=request)
    if kind == "httpx":
        return httpx.HTTPStatusError("the provider said no", request=request, response=response)
    import openai

    error = openai.RateLimitError if status == 429 else openai.InternalServerError
    return error("the provider said no", response=response, body=None)


@pytest.mark.parametrize(
    ("kind", "status", "signal", "error_type"),
    [
        ("openai", 429, "rate_limit", "RateLimitError"),
        ("openai", 503, "api_error", "InternalServerError"),
        ("httpx", 429, "rate_limit", "HTTPStatusError"),
        ("httpx", 500, "api_error", "HTTPStatusError"),
    ],
)
async def test_an_api_error_carries_its_http_status(
    instrumented: Any, received: Any, kind: str, status: int, signal: str, error_type: str
) -> None:
    llm = ScriptedLLM([api_error(kind, status)])
    with pytest.raises(Exception, match="the provider said no"):
        await FunctionAgent(tools=[FunctionTool.from_defaults(lookup)], llm=llm, streaming=False).run("weather?")
    (events,) = by_run(received()).values()
    well_formed(events)
    (sent,) = only(events, "external.signal")
    assert sent["payload"] == {
        "signal_name": signal,
        "source": "llamaindex",
        "http_status": status,
        "error_type": error_type,
    }
    assert events[-1]["payload"]["error_type"] == error_type
    assert "said no" not in str(events)
