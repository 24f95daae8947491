"""Which span is what, and where its facts are: the attribute names of the
OpenTelemetry GenAI semantic conventions, then the OpenInference and
OpenLLMetry names that real emitters use.

Everything here reads a plain mapping of attribute names to values (what
OpenTelemetry calls ``Attributes``) and imports no OpenTelemetry. A value of
the wrong type is treated as absent: a span from an emitter we do not know
can give us less, never an exception.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "AGENT",
    "KIND_KEYS",
    "LLM",
    "RETRIEVAL",
    "TOOL",
    "classify",
    "count",
    "finish_reason",
    "first_text",
    "name_of",
    "output_text",
    "prompt_parts",
    "prompt_text",
    "retrieved",
    "tool_names",
]

AGENT, LLM, TOOL, RETRIEVAL = 1, 2, 3, 4

Attributes = Mapping[str, Any]

# gen_ai.operation.name (GenAI conventions); create_agent and embeddings are
# not steps of a run.
_OPERATIONS = {
    "invoke_agent": AGENT,
    "chat": LLM,
    "text_completion": LLM,
    "generate_content": LLM,
    "execute_tool": TOOL,
    "retrieval": RETRIEVAL,
    "retrieve": RETRIEVAL,
}
# openinference.span.kind; CHAIN, EMBEDDING, RERANKER, GUARDRAIL, EVALUATOR
# are left to their enclosing run.
_OPENINFERENCE = {"AGENT": AGENT, "LLM": LLM, "TOOL": TOOL, "RETRIEVER": RETRIEVAL}
# traceloop.span.kind (OpenLLMetry): a workflow is the run of an app that
# has no agent of its own. LLM spans carry llm.request.type instead.
_TRACELOOP = {"agent": AGENT, "workflow": AGENT, "tool": TOOL}
_REQUEST_TYPES = {"chat": LLM, "completion": LLM}


#: A span with none of these attributes is not GenAI (what ``classify``
#: reads), checked in one set operation.
KIND_KEYS = frozenset({"gen_ai.operation.name", "openinference.span.kind", "traceloop.span.kind", "llm.request.type"})


def classify(attributes: Attributes) -> int:
    """AGENT, LLM, TOOL, RETRIEVAL, or 0 for a span that is none of them
    (or not GenAI at all). At most four dictionary lookups."""
    kind = attributes.get("gen_ai.operation.name")
    if kind is not None:
        return _OPERATIONS.get(kind, 0) if isinstance(kind, str) else 0
    kind = attributes.get("openinference.span.kind")
    if kind is not None:
        return _OPENINFERENCE.get(kind, 0) if isinstance(kind, str) else 0
    kind = attributes.get("traceloop.span.kind")
    if kind is not None:
        return _TRACELOOP.get(kind, 0) if isinstance(kind, str) else 0
    kind = attributes.get("llm.request.type")
    if kind is not None:
        return _REQUEST_TYPES.get(kind, 0) if isinstance(kind, str) else 0
    return 0


# -- plain facts --------------------------------------------------------------

MODEL = ("gen_ai.request.model", "gen_ai.response.model", "llm.model_name", "model_name")
INPUT_TOKENS = (
    "gen_ai.usage.input_tokens",
    "gen_ai.usage.prompt_tokens",
    "llm.token_count.prompt",
    "llm.usage.prompt_tokens",
)
OUTPUT_TOKENS = (
    "gen_ai.usage.output_tokens",
    "gen_ai.usage.completion_tokens",
    "llm.token_count.completion",
    "llm.usage.completion_tokens",
)
AGENT_NAME = ("gen_ai.agent.name", "agent_name", "agent.name", "traceloop.entity.name")
TOOL_NAME = ("gen_ai.tool.name", "tool.name", "traceloop.entity.name")
INDEX_NAME = ("gen_ai.data_source.id", "retrieval.index_name", "db.collection.name")
# Content: read to be scanned and hashed here, never sent.
AGENT_INPUT = ("gen_ai.input.messages", "input.value", "traceloop.entity.input", "gen_ai.prompt")
AGENT_OUTPUT = ("final_result", "gen_ai.output.messages", "output.value", "traceloop.entity.output")
TOOL_ARGS = ("gen_ai.tool.call.arguments", "input.value", "traceloop.entity.input")
TOOL_RESULT = ("gen_ai.tool.call.result", "output.value", "traceloop.entity.output")
QUERY = ("gen_ai.retrieval.query.text", "gen_ai.retrieval.query", "input.value", "traceloop.entity.input")
_SYSTEM = ("gen_ai.system_instructions",)
_PROMPT = ("gen_ai.input.messages", "gen_ai.prompt")
_COMPLETION = ("gen_ai.output.messages", "gen_ai.completion")
# Flattened message lists: OpenInference, then OpenLLMetry.
_IN_PREFIXES = ("llm.input_messages.", "gen_ai.prompt.")
_OUT_PREFIXES = ("llm.output_messages.", "gen_ai.completion.")


def first_text(attributes: Attributes, names: Sequence[str]) -> str | None:
    """The first of ``names`` holding text (a sequence of strings is joined
    by newlines, as OpenTelemetry may carry a list)."""
    for name in names:
        value = attributes.get(name)
        if isinstance(value, str):
            return value
        if isinstance(value, (tuple, list)) and value and all(isinstance(v, str) for v in value):
            return "\n".join(value)
    return None


def name_of(attributes: Attributes, names: Sequence[str]) -> str | None:
    for name in names:
        value = attributes.get(name)
        if isinstance(value, str) and value:
            return value
    return None


def count(attributes: Attributes, names: Sequence[str]) -> int | None:
    """A token count: a non-negative int (a float that is whole is taken)."""
    for name in names:
        value = attributes.get(name)
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int) and value >= 0:
            return value
        if isinstance(value, float) and value >= 0 and value.is_integer():
            return int(value)
    return None


# Providers' own words for the contract's finish reasons.
_FINISH = {
    "tool_call": "tool_calls",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
    "max_tokens": "length",
    "end_turn": "stop",
    "stop_sequence": "stop",
}


def finish_reason(attributes: Attributes) -> str | None:
    """The provider's finish reason as the contract spells it, or None when
    the span does not say (never a made-up ``stop``)."""
    value = attributes.get("gen_ai.response.finish_reasons")
    if isinstance(value, (tuple, list)):
        value = value[-1] if value else None
    if not isinstance(value, str):
        value = attributes.get("gen_ai.completion.0.finish_reason")
    if not isinstance(value, str):
        value = attributes.get("llm.finish_reason")
    if not isinstance(value, str) or not value:
        return None
    value = value.lower()
    return _FINISH.get(value, value)


def tool_names(attributes: Attributes) -> list[str] | None:
    """The tools offered to the model or the agent: GenAI tool definitions,
    smolagents' own list, OpenInference's tool schemas."""
    value = attributes.get("gen_ai.tool.definitions")
    if isinstance(value, str):
        names = [_definition_name(d) for d in _json_list(value)]
        return [n for n in names if n] or None
    value = attributes.get("smolagents.tools_names")
    if isinstance(value, (tuple, list)):
        return [n for n in value if isinstance(n, str) and n] or None
    names = []
    for index in range(64):
        schema = attributes.get(f"llm.tools.{index}.tool.json_schema")
        if not isinstance(schema, str):
            break
        name = _definition_name(_json(schema))
        if name:
            names.append(name)
    return names or None


def _definition_name(definition: Any) -> str | None:
    if not isinstance(definition, dict):
        return None
    function = definition.get("function")
    name = function.get("name") if isinstance(function, dict) else definition.get("name")
    return name if isinstance(name, str) and name else None


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _json_list(text: str) -> list[Any]:
    value = _json(text)
    return value if isinstance(value, list) else []


# -- messages -------------------------------------------------------------------


def prompt_parts(attributes: Attributes) -> tuple[str | None, str | None, str | None]:
    """(system prompt, user input, whole prompt) of an LLM span, each None
    when the span carries no content (an emitter told not to record it).

    The system prompt and the user's messages are what a run's
    ``agent_version`` and ``input_hash`` are built from; the whole prompt is
    what the call's ``prompt_hash`` is of."""
    system = first_text(attributes, _SYSTEM)
    whole = first_text(attributes, _PROMPT)
    if whole is not None:
        messages = _json(whole)
        if isinstance(messages, list):
            user = _texts(messages, "user")
            if system is None:
                system = _texts(messages, "system")
            return system, user, whole
        return system, whole, whole
    flattened = _flattened(attributes, _IN_PREFIXES)
    if flattened:
        if system is None:
            system = _texts(flattened, "system")
        return system, _texts(flattened, "user"), json.dumps(flattened, sort_keys=True)
    return system, None, None


def prompt_text(attributes: Attributes) -> str | None:
    """An LLM span's whole prompt as text, unparsed (for the injection scan
    of a run already started)."""
    whole = first_text(attributes, _PROMPT)
    if whole is not None:
        return whole
    flattened = _flattened(attributes, _IN_PREFIXES)
    return json.dumps(flattened, sort_keys=True) if flattened else None


def output_text(attributes: Attributes) -> str | None:
    """What an LLM answered, as text: its text parts and its tool calls'
    arguments, so its length is the answer's and an empty answer is 0."""
    whole = first_text(attributes, _COMPLETION)
    if whole is not None:
        messages = _json(whole)
        if isinstance(messages, list):
            return _texts(messages, None) or ""
        return whole
    flattened = _flattened(attributes, _OUT_PREFIXES)
    if flattened:
        return _texts(flattened, None) or ""
    return first_text(attributes, ("output.value",))


def _texts(messages: list[Any], role: str | None) -> str | None:
    """The text of the messages of ``role`` (every role: None), GenAI
    message shape (``parts``) or the flattened ones (``content``)."""
    out: list[str] = []
    for message in messages:
        if not isinstance(message, dict) or (role is not None and message.get("role") != role):
            continue
        content = message.get("content")
        if isinstance(content, str):
            out.append(content)
        for part in message.get("parts") or message.get("contents") or ():
            if not isinstance(part, dict):
                continue
            text = part.get("content", part.get("text"))
            if isinstance(text, str):
                out.append(text)
            elif part.get("type") == "tool_call" and part.get("arguments") is not None:
                args = part["arguments"]
                out.append(args if isinstance(args, str) else json.dumps(args, sort_keys=True))
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict) and isinstance(call.get("arguments"), str):
                out.append(call["arguments"])
    return "\n".join(out) if out else None


def _flattened(attributes: Attributes, prefixes: Sequence[str]) -> list[dict[str, Any]]:
    """OpenInference's ``llm.input_messages.0.message.role`` and
    OpenLLMetry's ``gen_ai.prompt.0.role`` back into a list of messages."""
    for prefix in prefixes:
        messages: dict[int, dict[str, Any]] = {}
        for key, value in attributes.items():
            if not key.startswith(prefix) or not isinstance(value, str):
                continue
            index, _, rest = key[len(prefix) :].partition(".")
            if not index.isdigit():
                continue
            message = messages.setdefault(int(index), {"contents": [], "tool_calls": []})
            rest = rest.removeprefix("message.")
            if rest == "role":
                message["role"] = value
            elif rest == "content":
                message["content"] = value
            elif rest.startswith("contents.") and rest.endswith(".text"):
                message["contents"].append({"text": value})
            elif rest.startswith("tool_calls.") and rest.endswith(".arguments"):
                message["tool_calls"].append({"arguments": value})
        if messages:
            return [messages[i] for i in sorted(messages)]
    return []


def retrieved(attributes: Attributes) -> tuple[int | None, float | None]:
    """(result count, top score) of a retrieval span, from OpenInference's
    ``retrieval.documents.N.document.*``; (None, None) when it lists none."""
    indices: set[str] = set()
    top: float | None = None
    for key, value in attributes.items():
        if not key.startswith("retrieval.documents."):
            continue
        index, _, rest = key[20:].partition(".")
        if index.isdigit():
            indices.add(index)
            is_score = rest == "document.score" and isinstance(value, (int, float)) and not isinstance(value, bool)
            if is_score and value == value and (top is None or value > top):
                top = float(value)
    if not indices:
        value = attributes.get("gen_ai.retrieval.documents.count")
        return (value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None), None
    return len(indices), top
