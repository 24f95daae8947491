"""Calls of tools the agent does not have (a name the model invented).

LangGraph's ``ToolNode`` (langgraph-prebuilt 1.1) answers such a call with
``ToolMessage(status="error", content="Error: <name> is not a valid
tool...")`` without invoking any tool, so no tool callback fires. The
translator notes the calls a model reply makes to unknown names; the
``ToolMessage`` answering one, found in the output of the node that made
it, is reported as a failed call of that name. No framework import: the
messages are read by attribute.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = ["tool_answers", "tool_calls_of"]

_SEQ = (list, tuple)


def tool_calls_of(response: Any) -> list[tuple[str, str, Any]]:
    """``(tool_call_id, name, args)`` of each tool call in an ``LLMResult``'s
    first generation."""
    generations = getattr(response, "generations", None)
    try:
        message = getattr(generations[0][0], "message", None)
    except (TypeError, IndexError, KeyError):
        return []
    calls = []
    for call in getattr(message, "tool_calls", None) or ():
        if isinstance(call, dict) and isinstance(call.get("id"), str) and isinstance(call.get("name"), str):
            calls.append((call["id"], call["name"], call.get("args")))
    return calls


def _messages(outputs: Any, depth: int = 0) -> Iterator[Any]:
    # A node's output: {"messages": [...]}, a list of messages, a Command
    # (``update=``), or a list of those.
    if depth > 3:
        return
    if isinstance(outputs, dict):
        outputs = outputs.get("messages")
    elif not isinstance(outputs, _SEQ):
        update = getattr(outputs, "update", None)
        if update is None:
            if getattr(outputs, "tool_call_id", None) is not None:
                yield outputs
            return
        outputs = update.get("messages") if isinstance(update, dict) else update
    if isinstance(outputs, _SEQ):
        for item in outputs:
            if getattr(item, "tool_call_id", None) is not None:
                yield item
            elif isinstance(item, (dict, *_SEQ)) or hasattr(item, "update"):
                yield from _messages(item, depth + 1)


def tool_answers(outputs: Any) -> list[tuple[str, bool, Any]]:
    """``(tool_call_id, failed, content)`` of each ``ToolMessage`` in a
    chain's output."""
    answers = []
    for message in _messages(outputs):
        call_id = getattr(message, "tool_call_id", None)
        if isinstance(call_id, str):
            answers.append((call_id, getattr(message, "status", None) == "error", getattr(message, "content", None)))
    return answers
