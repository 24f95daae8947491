"""The OpenAI Agents SDK's span data as GenAI attributes, for the span
translator of ``dunetrace.integrations.otel``. Reads the SDK's objects by
attribute (``span_data.type``, ``.name``, ``.usage``...); imports no SDK.

Written against openai-agents 0.20: ``agent``, ``generation`` (Chat
Completions models), ``response`` (the Responses API, the SDK's default),
``function``, ``handoff``, ``guardrail`` and ``custom`` span data. Content
(model input and output, tool input and output) goes into the attributes the
translator scans and hashes; it is never sent.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from dunetrace.integrations.openai.readers import read_response

__all__ = ["attributes_of", "error_of", "nanos"]


def nanos(iso: Any) -> int | None:
    """An SDK timestamp (ISO 8601 text) in Unix nanoseconds."""
    if not isinstance(iso, str):
        return None
    try:
        return int(datetime.fromisoformat(iso).timestamp() * 1e9)
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, default=str, sort_keys=True)
    except (TypeError, ValueError):
        return repr(value)


def _usage(usage: Any) -> tuple[Any, Any]:
    if isinstance(usage, dict):
        return usage.get("input_tokens"), usage.get("output_tokens")
    return getattr(usage, "input_tokens", None), getattr(usage, "output_tokens", None)


def agent_attributes(data: Any, as_run: bool) -> dict[str, Any]:
    """An agent span: a run of its own (``as_run``) or the description of
    the run it starts (its name, its tools)."""
    out: dict[str, Any] = {}
    if as_run:
        out["gen_ai.operation.name"] = "invoke_agent"
    name = getattr(data, "name", None)
    if isinstance(name, str) and name:
        out["gen_ai.agent.name"] = name
    tools = getattr(data, "tools", None)
    if isinstance(tools, list):
        out["gen_ai.tool.definitions"] = json.dumps([{"name": t} for t in tools if isinstance(t, str)])
    return out


def attributes_of(data: Any, ended: bool) -> dict[str, Any]:
    """GenAI attributes of a span that is not an agent span; empty for span
    data that is not a step (turns, tasks, handoffs, guardrails)."""
    kind = getattr(data, "type", None)
    if kind == "function":
        out: dict[str, Any] = {"gen_ai.operation.name": "execute_tool"}
        if not ended:
            # The SDK sets the arguments after the span starts (0.20): the
            # call is reported whole when it ends.
            return out
        name = getattr(data, "name", None)
        if isinstance(name, str) and name:
            out["gen_ai.tool.name"] = name
        arguments = _text(getattr(data, "input", None))
        if arguments is not None:
            out["gen_ai.tool.call.arguments"] = arguments
        result = getattr(data, "output", None)
        if result is not None:
            out["gen_ai.tool.call.result"] = result if isinstance(result, str) else str(result)
        return out
    if kind == "generation":
        out = {"gen_ai.operation.name": "chat"}
        if not ended:
            return out
        model = getattr(data, "model", None)
        if isinstance(model, str) and model:
            out["gen_ai.request.model"] = model
        _tokens(out, getattr(data, "usage", None))
        prompt = _text(getattr(data, "input", None))
        if prompt is not None:
            out["gen_ai.input.messages"] = prompt
        output = getattr(data, "output", None)
        text = _chat_output(output)
        if text is not None:
            out["gen_ai.output.messages"] = text
        # Chat Completions' finish reason is not in the span; a message
        # that calls tools says the one thing it would have.
        if isinstance(output, list) and any(isinstance(m, dict) and m.get("tool_calls") for m in output):
            out["gen_ai.response.finish_reasons"] = ("tool_calls",)
        return out
    if kind == "response":
        out = {"gen_ai.operation.name": "chat"}
        if not ended:
            return out
        response = getattr(data, "response", None)
        model = getattr(response, "model", None)
        if isinstance(model, str) and model:
            out["gen_ai.request.model"] = model
        if response is not None:
            outcome = read_response(response)
            _tokens(out, None, outcome.prompt_tokens, outcome.completion_tokens)
            if outcome.finish_reason:
                out["gen_ai.response.finish_reasons"] = (outcome.finish_reason,)
            parts = [outcome.text] + [_text(args) or "" for _, args in outcome.tool_calls]
            out["gen_ai.output.messages"] = json.dumps(
                [{"role": "assistant", "parts": [{"type": "text", "content": p} for p in parts if p]}]
            )
        prompt = _text(getattr(data, "input", None))
        if prompt is not None:
            out["gen_ai.input.messages"] = prompt
        return out
    return {}


def _tokens(out: dict[str, Any], usage: Any, input_tokens: Any = None, output_tokens: Any = None) -> None:
    if usage is not None:
        input_tokens, output_tokens = _usage(usage)
    if isinstance(input_tokens, int) and not isinstance(input_tokens, bool):
        out["gen_ai.usage.input_tokens"] = input_tokens
    if isinstance(output_tokens, int) and not isinstance(output_tokens, bool):
        out["gen_ai.usage.output_tokens"] = output_tokens


def _chat_output(output: Any) -> str | None:
    """Chat Completions messages in the GenAI message shape, so the length
    is the answer's text and its tool calls' arguments."""
    if not isinstance(output, list):
        return _text(output)
    messages = []
    for message in output:
        if not isinstance(message, dict):
            continue
        parts = []
        if isinstance(message.get("content"), str):
            parts.append({"type": "text", "content": message["content"]})
        for call in message.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict):
                parts.append(
                    {"type": "tool_call", "name": function.get("name"), "arguments": function.get("arguments")}
                )
        messages.append({"role": message.get("role"), "parts": parts})
    return json.dumps(messages)


def error_of(span: Any) -> tuple[str, str] | None:
    """(class name, message) of a span's ``error`` (a dict with
    ``message`` and ``data``), or None."""
    error = getattr(span, "error", None)
    if not error:
        return None
    message = error.get("message") if isinstance(error, dict) else str(error)
    return ("AgentsError", message if isinstance(message, str) else "")
