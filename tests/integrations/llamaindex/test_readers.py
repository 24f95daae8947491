"""Reading usage, finish reasons and names from the shapes providers give,
with plain fakes (no LlamaIndex objects needed)."""

from __future__ import annotations

import inspect
from types import SimpleNamespace as NS
from typing import Any

import pytest

from dunetrace.integrations.llamaindex import readers as extract


@pytest.mark.parametrize(
    ("response", "tokens", "reason"),
    [
        # llama-index-llms-openai: usage copied into additional_kwargs; raw is the SDK object.
        (
            NS(
                additional_kwargs={"prompt_tokens": 12, "completion_tokens": 3},
                raw=NS(choices=[NS(finish_reason="length")]),
            ),
            (12, 3),
            "length",
        ),
        # a response given as a dict is read the same way
        (
            {"raw": {"usage": {"prompt_tokens": 5, "completion_tokens": 1}, "choices": [{"finish_reason": "stop"}]}},
            (5, 1),
            "stop",
        ),
        (
            NS(raw={"usage": {"prompt_tokens": 5, "completion_tokens": 1}, "choices": [{"finish_reason": "stop"}]}),
            (5, 1),
            "stop",
        ),
        # Anthropic: input/output tokens, stop_reason words
        (NS(raw=NS(usage=NS(input_tokens=40, output_tokens=9), stop_reason="max_tokens")), (40, 9), "length"),
        (NS(raw={"usage": {"input_tokens": 4, "output_tokens": 2}, "stop_reason": "tool_use"}), (4, 2), "tool_calls"),
        # Gemini: usage_metadata, finish reason an enum on the candidate
        (
            NS(
                raw=NS(
                    usage_metadata=NS(prompt_token_count=7, candidates_token_count=2),
                    candidates=[NS(finish_reason=NS(name="MAX_TOKENS"))],
                )
            ),
            (7, 2),
            "length",
        ),
        # nothing said: a message with tool calls stopped for them, else unknown
        (NS(raw=None, message=NS(additional_kwargs={"tool_calls": [1]})), (None, None), "tool_calls"),
        (NS(raw=None, message=NS(additional_kwargs={}, blocks=[])), (None, None), None),
        (None, (None, None), None),
        (NS(additional_kwargs={"prompt_tokens": -1, "completion_tokens": True}), (None, None), None),
    ],
)
def test_usage_and_finish_reason(response: Any, tokens: tuple[Any, Any], reason: Any) -> None:
    assert extract.token_usage(response) == tokens
    assert extract.finish_reason(response) == reason


def test_names_and_inputs() -> None:
    assert extract.method_of("FunctionTool.acall-0b1c-22-33") == ("FunctionTool", "acall")
    assert extract.method_of("run_step-1") == ("", "run_step")
    assert extract.index_name("VectorIndexRetriever.retrieve-9-9") == "VectorIndexRetriever"
    assert extract.llm_model({"model": "gpt-4o-mini", "class_name": "OpenAI"}) == "gpt-4o-mini"
    assert extract.llm_model({"model_name": "unknown", "class_name": "MockLLM"}) == "MockLLM"
    assert extract.llm_model("garbage") is None

    def run(*args: Any, **kwargs: Any) -> None: ...

    assert extract.user_input(inspect.signature(run).bind("hi")) == "hi"
    assert extract.user_input(inspect.signature(run).bind(user_msg=NS(content="msg"))) == "msg"
    assert extract.user_input(inspect.signature(run).bind(start_event=NS(user_msg="start"))) == "start"

    def query(str_or_query_bundle: Any) -> None: ...

    assert extract.user_input(inspect.signature(query).bind(NS(query_str="q"))) == "q"
    assert extract.user_input(None) is None

    def acall(*args: Any, **kwargs: Any) -> None: ...

    assert extract.tool_args(inspect.signature(acall).bind(city="x")) == {"city": "x"}
    assert extract.tool_args(inspect.signature(acall).bind("x")) == {"args": ("x",)}


def test_tool_results_and_scores() -> None:
    boom = ValueError("boom")
    assert extract.tool_result(NS(is_error=False, content="out")) == (True, "out", None)
    assert extract.tool_result(NS(is_error=True, content="bad", exception=boom)) == (False, "bad", boom)
    assert extract.tool_result(NS(is_error=True, content="bad", exception=None)) == (False, "bad", "bad")
    assert extract.tool_result(None) == (True, None, None)
    nodes = [NS(score=0.2), NS(score=None), NS(score=0.9), NS(score=float("nan")), NS(score=True)]
    assert extract.retrieval_scores(nodes) == (5, 0.9)
    assert extract.retrieval_scores([]) == (0, None)
    assert extract.retrieval_scores(None) == (None, None)


def test_agent_fields() -> None:
    tool = NS(metadata=NS(name="search"))

    def helper() -> None: ...

    agent = NS(name="a", tools=[tool, helper, None], llm=NS(model="gpt-x"))
    workflow = NS(agents={"a": agent, "b": NS(tools=[NS(metadata=NS(name="handoff")), tool])})
    assert extract.agent_tools(agent) == ["search", "helper"]
    assert extract.agent_tools(workflow) == ["search", "helper", "handoff"]
    assert extract.agent_model(agent) == "gpt-x"
    assert extract.agent_model(NS(llm=NS(metadata=NS(model_name="unknown")))) == "SimpleNamespace"
    assert extract.agent_name(NS(name="")) == "SimpleNamespace"
