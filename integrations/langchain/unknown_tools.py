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

import threading
from collections.abc import Hashable, Iterator
from typing import Any
from uuid import UUID

__all__ = ["UnknownToolCalls", "tool_answers", "tool_calls_of"]

_SEQ = (list, tuple)


def tool_calls_of(response: Any) -> list[tuple[str, str, Any]]:
    """``(tool_call_id, name, args)`` of each tool call in an ``LLMResult``'s
    first generation."""
    generations: Any = getattr(response, "generations", None)
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


class UnknownToolCalls:
    """The translator's part that follows calls of tools a run does not
    have, and tools bound as an output schema. Mixed into ``Translator``:
    it uses its ``_nodes`` and ``_lock``, and the ``invented`` and
    ``output_tools`` of its roots."""

    _nodes: dict[Hashable, Any]
    _lock: threading.Lock
    invented_pending: int

    def _node_of(self, run_id: Any) -> Any:
        key = run_id.int if run_id.__class__ is UUID else run_id
        return self._nodes.get(key) if isinstance(key, Hashable) else None

    def output_tools_seen(self, run_id: Any, names: frozenset[str]) -> None:
        """Tool names bound to a run's model calls as an output schema
        (``create_agent``'s ``ToolStrategy``), read while its call starts."""
        node = self._node_of(run_id)
        if node is not None:
            node.root.output_tools = node.root.output_tools | names

    def _sort_tool_calls(self, root: Any, run: Any, calls: list[tuple[str, str, Any]], final: bool) -> bool:
        """Note the calls of tools the run does not have; returns whether the
        reply is an answer (it calls output-schema tools only)."""
        output = root.output_tools
        if output and all(name in output for _, name, _ in calls):
            return True
        known = run.tools
        for call_id, name, args in calls:
            if name not in known and name not in output:
                with self._lock:
                    if root.invented is None:
                        root.invented = {}
                        self.invented_pending += 1
                    root.invented[call_id] = (name, args)
        return final

    def _answered_invented(self, root: Any, call_id: str) -> tuple[str, Any] | None:
        with self._lock:
            invented = root.invented
            found = invented.pop(call_id, None) if invented is not None else None
            if invented is not None and not invented:
                root.invented = None
                self.invented_pending -= 1
        return found

    def _forget_invented(self, root: Any) -> None:
        with self._lock:
            if root.invented is not None:
                root.invented = None
                self.invented_pending -= 1

    def tool_answers(self, run_id: Any, answers: list[tuple[str, bool, Any]]) -> None:
        """The ``(tool_call_id, failed, content)`` answers found in a chain's
        output: those answering a call of a tool the agent does not have
        are reported as that call (``ToolNode`` invokes no tool for them)."""
        node = self._node_of(run_id)
        if node is None or node.root.invented is None:
            return
        for call_id, failed, content in answers:
            found = self._answered_invented(node.root, call_id)
            if found is not None:
                name, args = found
                step = node.run.tool_called(name, args)
                node.run.tool_responded(name, not failed, latency_ms=0.0, error=content if failed else None, step=step)
