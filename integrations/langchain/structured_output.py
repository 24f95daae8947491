"""Structured output: which tools bound to a model call are an output
schema rather than tools of the agent.

``model.with_structured_output(Schema)`` (function calling) binds the
schema as a tool and forces the model to call it; ``create_agent(...,
response_format=ToolStrategy(Schema))`` binds it beside the agent's tools.
Such a tool is not one the agent has: it is left out of ``run.started``'s
tools (and so of ``agent_version``), and a reply that only calls it is the
run's answer. JSON-mode and provider-native structured output bind no tool,
and their reply is plain text, an answer already.
"""

from __future__ import annotations

from typing import Any

from .framework_state import agent_model_request

__all__ = ["agent_tools", "schema_tool_name"]


def _schema_name(schema: Any) -> str | None:
    if not isinstance(schema, dict):
        return None
    function = schema.get("function")
    name = function.get("name") if isinstance(function, dict) else None  # an OpenAI tool dict
    if isinstance(name, str) and name:
        return name
    for key in ("title", "name"):  # a JSON schema, or a function dict
        name = schema.get(key)
        if isinstance(name, str) and name:
            return name
    return None


def schema_tool_name(options: Any) -> str | None:
    """The schema tool of a ``with_structured_output`` call, from the
    ``options`` LangChain passes to ``on_chat_model_start`` (langchain-core
    1.x puts ``ls_structured_output_format`` there: the method and the JSON
    schema); None for any other call, and for the JSON modes, which bind no
    tool."""
    if not isinstance(options, dict):
        return None
    spec = options.get("ls_structured_output_format")
    if not isinstance(spec, dict):
        return None
    kwargs = spec.get("kwargs")
    method = kwargs.get("method") if isinstance(kwargs, dict) else None
    if method not in (None, "function_calling"):
        return None
    return _schema_name(spec.get("schema"))


def _name_of(tool: Any) -> str | None:
    name = tool.get("name") if isinstance(tool, dict) else getattr(tool, "name", None)
    return name if isinstance(name, str) and name else None


def agent_tools(bound: list[str]) -> tuple[list[str], frozenset[str]]:
    """``(the agent's tools, output tools)`` among the tool names bound to
    a model call, called from inside that call's start callback. Outside a
    ``create_agent`` agent every bound tool is the agent's."""
    request = agent_model_request()
    if request is None or not bound:
        return bound, frozenset()
    own = {name for name in map(_name_of, getattr(request, "tools", None) or ()) if name}
    if not own and getattr(request, "response_format", None) is None:
        return bound, frozenset()
    output = frozenset(name for name in bound if name not in own)
    return [name for name in bound if name in own], output
