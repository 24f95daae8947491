"""The readers behind retries, structured output and unknown tools take
whatever LangChain hands over: any value gives an answer, never an
exception, and the real shapes give the right one."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langgraph.types import Command

from dunetrace.api_errors import api_error_signal
from dunetrace.integrations.langchain.adapter import read_llm_result
from dunetrace.integrations.langchain.errors import is_recursion_limit
from dunetrace.integrations.langchain.structured_output import schema_tool_name
from dunetrace.integrations.langchain.unknown_tools import tool_answers, tool_calls_of

from .failing import rate_limit_error, server_error

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)


@given(values)
def test_any_value_is_read_without_raising(value: Any) -> None:
    assert isinstance(tool_answers(value), list)
    assert isinstance(tool_calls_of(value), list)
    assert schema_tool_name(value) is None or isinstance(schema_tool_name(value), str)
    assert schema_tool_name({"ls_structured_output_format": value}) is None or isinstance(
        schema_tool_name({"ls_structured_output_format": value}), str
    )
    assert is_recursion_limit(value) is False


def test_tool_messages_in_every_output_shape() -> None:
    failed = ToolMessage("Error: fly is not a valid tool", tool_call_id="c1", name="fly", status="error")
    fine = ToolMessage("ok", tool_call_id="c2", name="search")
    expected = [("c1", True, failed.content), ("c2", False, "ok")]
    assert tool_answers({"messages": [failed, fine]}) == expected
    assert tool_answers([failed, fine]) == expected
    assert tool_answers([Command(update={"messages": [failed]}), Command(update={"messages": [fine]})]) == expected
    assert tool_answers(Command(update={"messages": [failed, fine]})) == expected
    assert tool_answers({"messages": [AIMessage("hi")]}) == []


def test_tool_calls_of_a_reply() -> None:
    reply = AIMessage("", tool_calls=[{"name": "fly", "args": {"to": "moon"}, "id": "c1"}])
    result = LLMResult(generations=[[ChatGeneration(message=reply)]])
    assert tool_calls_of(result) == [("c1", "fly", {"to": "moon"})]


def test_schema_names_in_each_format() -> None:
    def options(schema: Any, method: str | None = "function_calling") -> dict[str, Any]:
        kwargs = {"method": method} if method else {}
        return {"ls_structured_output_format": {"kwargs": kwargs, "schema": schema}}

    assert schema_tool_name(options({"title": "Weather", "type": "object"})) == "Weather"
    assert schema_tool_name(options({"type": "function", "function": {"name": "Weather"}})) == "Weather"
    assert schema_tool_name(options({"name": "Weather", "parameters": {}}, None)) == "Weather"
    assert schema_tool_name(options({"title": "Weather"}, "json_mode")) is None
    assert schema_tool_name(options({"title": "Weather"}, "json_schema")) is None
    assert schema_tool_name({"stop": None}) is None


def test_api_errors_and_others() -> None:
    assert api_error_signal(rate_limit_error()) == ("rate_limit", {"http_status": 429, "error_type": "RateLimitError"})
    assert api_error_signal(server_error()) == ("api_error", {"http_status": 500, "error_type": "InternalServerError"})
    assert api_error_signal(ValueError("bad")) is None


call_fields = st.none() | st.text(max_size=6) | st.integers() | values
tool_calls = st.lists(
    st.fixed_dictionaries({}, optional={"id": call_fields, "name": call_fields, "args": values, "type": call_fields})
    | values,
    max_size=5,
)


@given(tool_calls, st.text(max_size=6), st.sampled_from([None, "stop", "tool_calls", "length"]))
def test_the_reply_reader_finds_the_tool_calls_tool_calls_of_finds(calls: list[Any], text: str, finish: Any) -> None:
    # read_llm_result reads a reply's tool calls in the pass that reads the
    # rest (the handler's path); tool_calls_of is the reading on its own.
    message = SimpleNamespace(content=text, tool_calls=calls, usage_metadata=None, response_metadata={})
    info = {"finish_reason": finish} if finish else None
    reply = SimpleNamespace(generations=[[SimpleNamespace(message=message, generation_info=info)]], llm_output=None)
    *_, final, named = read_llm_result(reply)
    assert named == tool_calls_of(reply)
    assert final is (not calls and finish != "tool_calls")


def test_a_real_reply_read_in_one_pass() -> None:
    reply = AIMessage("", tool_calls=[{"name": "fly", "args": {"to": "moon"}, "id": "c1"}])
    result = LLMResult(generations=[[ChatGeneration(message=reply, generation_info={"finish_reason": "tool_calls"})]])
    assert read_llm_result(result) == (
        None,
        None,
        "tool_calls",
        [["fly", {"to": "moon"}]],
        None,
        False,
        [("c1", "fly", {"to": "moon"})],
    )
