"""The readers behind retries, structured output and unknown tools take
whatever LangChain hands over: any value gives an answer, never an
exception, and the real shapes give the right one."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, LLMResult
from langgraph.types import Command

from dunetrace.api_errors import api_error_signal
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
