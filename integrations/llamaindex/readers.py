"""What the translator reads from LlamaIndex objects, by attribute only.

Nothing here imports LlamaIndex: every reader takes whatever it is given
(a real ``ChatResponse``, a plain fake, None, garbage) and returns a plain
value or None. Content (prompts, completions, queries, tool arguments) is
returned raw so the caller can hand it to the run's hashing parameters; it is
never put in a payload.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "agent_configuration",
    "agent_model",
    "agent_name",
    "agent_tools",
    "completion_text",
    "finish_reason",
    "index_name",
    "is_iteration_limit",
    "llm_model",
    "method_of",
    "resumes_paused_run",
    "retrieval_scores",
    "runs_in_own_task",
    "text_of",
    "token_usage",
    "tool_args",
    "tool_name",
    "tool_result",
    "unknown_tool_call",
    "user_input",
]

# Provider stop reasons, in the contract's words (``stop``, ``length``,
# ``tool_calls``), so LLM_TRUNCATION_LOOP sees Anthropic and Gemini
# truncations as ``length`` too.
_FINISH_WORDS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "function_call": "tool_calls",
}

_INPUT_KEYS = ("user_msg", "str_or_query_bundle", "message", "query", "query_str", "input")


def _get(obj: Any, key: str) -> Any:
    """``obj[key]`` for mappings, ``obj.key`` otherwise; None when absent."""
    if obj is None:
        return None
    if isinstance(obj, dict):  # not Mapping: an ABC check costs a microsecond per call
        return obj.get(key)
    try:
        return getattr(obj, key, None)
    except Exception:  # a property that raises is the same as no value
        return None


def method_of(span_id: str) -> tuple[str, str]:
    """``("FunctionTool", "acall")`` from ``"FunctionTool.acall-<uuid4>"``.

    LlamaIndex (llama-index-instrumentation 0.6) names a span
    ``<class>.<method>-<uuid4>``, or ``<qualname>-<uuid4>`` for a function;
    neither part contains a hyphen, the uuid does.
    """
    head = span_id.partition("-")[0]
    owner, _, method = head.rpartition(".")
    return owner, method


def text_of(value: Any) -> str | None:
    """The text of a user message, query bundle or chat message."""
    if isinstance(value, str):
        return value
    for key in ("query_str", "content", "text"):
        found = _get(value, key)
        if isinstance(found, str):
            return found
    return None


def user_input(bound_args: Any) -> Any:
    """The user's message for a run span: ``agent.run("...")``,
    ``engine.query("...")``, ``engine.chat("...")``, or a start event."""
    arguments = _get(bound_args, "arguments")
    if not isinstance(arguments, Mapping):
        return None
    found = _input_from(arguments)
    if found is not None:
        return found
    # Workflow.run(*args, **kwargs): the message is the first positional
    # argument or a keyword argument.
    positional = arguments.get("args")
    if isinstance(positional, (tuple, list)) and positional:
        found = text_of(positional[0])
        if found is not None:
            return found
    keywords = arguments.get("kwargs")
    if isinstance(keywords, Mapping):
        return _input_from(keywords)
    return None


def _input_from(mapping: Mapping[str, Any]) -> Any:
    for key in _INPUT_KEYS:
        value = mapping.get(key)
        if value is not None:
            found = text_of(value)
            if found is not None:
                return found
    start = mapping.get("start_event")
    if start is not None:
        return start_event_input(start)
    return None


def start_event_input(start: Any) -> Any:
    """What a workflow was started with: an agent's ``user_msg``, or for a
    custom ``StartEvent(topic=...)`` its fields as a dict (hashed as the
    run's input and scanned key by key for injected instructions)."""
    message = text_of(_get(start, "user_msg"))
    if message is not None:
        return message
    # workflows 2.x StartEvent is a DictLikeModel: its fields live in _data.
    data = _get(start, "_data")
    if isinstance(data, Mapping) and data:
        return dict(data)
    return None


def runs_in_own_task(bound_args: Any) -> bool:
    """Is this span the body of a workflow run (llama-index-workflows 2.x
    ``run_workflow(init_state, start_event, tags)``), which runs in a task
    of its own that the workflow's steps are started from?"""
    arguments = _get(bound_args, "arguments")
    return isinstance(arguments, Mapping) and "init_state" in arguments


def resumes_paused_run(bound_args: Any) -> bool:
    """Is this ``Workflow.run`` span a run resumed from a saved context
    (``workflow.run(ctx=Context.from_dict(...))``)? Then workflows 2.x
    sends no start event and its broker state says it was running."""
    arguments = _get(bound_args, "arguments")
    if not isinstance(arguments, Mapping) or arguments.get("start_event") is not None:
        return False
    return _get(arguments.get("init_state"), "is_running") is True


def _tool_label(tool: Any) -> str | None:
    name = _get(_get(tool, "metadata"), "name")
    if isinstance(name, str) and name:
        return name
    name = getattr(tool, "__name__", None)  # agents accept plain functions as tools
    return name if isinstance(name, str) and name else None


def tool_name(instance: Any) -> str:
    return _tool_label(instance) or type(instance).__name__


def agent_tools(instance: Any) -> list[str]:
    """Tool names of an agent, or of every agent of an ``AgentWorkflow``."""
    names: list[str] = []
    holders = [instance]
    agents = _get(instance, "agents")
    if isinstance(agents, Mapping):
        holders.extend(agents.values())
    for holder in holders:
        tools = _get(holder, "tools")
        if isinstance(tools, (list, tuple)):
            for tool in tools:
                name = _tool_label(tool)
                if name is not None and name not in names:
                    names.append(name)
    return names


def agent_configuration(instance: Any) -> str | None:
    """For an ``AgentWorkflow``: every agent's name, system prompt, model
    and tools as one text, hashed into ``agent_version`` in place of a
    system prompt (so a change to any agent is a new version); else the
    instance's own system prompt."""
    agents = _get(instance, "agents")
    if not isinstance(agents, Mapping):
        prompt = _get(instance, "system_prompt")
        return prompt if isinstance(prompt, str) else None
    parts = []
    for name in sorted(agents, key=str):
        agent = agents[name]
        prompt = _get(agent, "system_prompt")
        parts.append(
            [str(name), prompt if isinstance(prompt, str) else "", agent_model(agent) or "", agent_tools(agent)]
        )
    root = _get(instance, "root_agent")
    return repr([root if isinstance(root, str) else "", parts])


def agent_name(instance: Any) -> str:
    name = _get(instance, "name")
    return name if isinstance(name, str) and name else type(instance).__name__


def agent_model(instance: Any) -> str | None:
    """The model of an agent; of an ``AgentWorkflow``, its root agent's."""
    agents = _get(instance, "agents")
    if isinstance(agents, Mapping) and _get(instance, "llm") is None:
        root = agents.get(_get(instance, "root_agent"))
        return agent_model(root) if root is not None and root is not instance else None
    llm = _get(instance, "llm")
    if llm is None:
        return None
    model = _get(llm, "model")
    if isinstance(model, str) and model:
        return model
    model = _get(_get(llm, "metadata"), "model_name")
    if isinstance(model, str) and model and model != "unknown":
        return model
    return type(llm).__name__


def llm_model(model_dict: Any) -> str | None:
    """The model from an LLM start event's ``model_dict`` (``LLM.to_payload()``)."""
    if not isinstance(model_dict, Mapping):
        return None
    for key in ("model", "model_name"):
        value = model_dict.get(key)
        if isinstance(value, str) and value and value != "unknown":
            return value
    value = model_dict.get("class_name")
    return value if isinstance(value, str) and value else None


def completion_text(response: Any) -> str | None:
    """The completion: ``ChatResponse.message.content`` or
    ``CompletionResponse.text`` (for a stream, the last chunk holds it all)."""
    message = _get(response, "message")
    if message is not None:
        content = text_of(message)
        return content if content is not None else ""
    text = _get(response, "text")
    return text if isinstance(text, str) else None


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


def token_usage(response: Any) -> tuple[int | None, int | None]:
    """(prompt_tokens, completion_tokens) where the LLM reports them.

    No LlamaIndex event carries usage (llama-index-core 0.14): it is in
    ``additional_kwargs`` (the OpenAI integration) or in the provider's
    ``raw`` response (``usage`` for OpenAI and Anthropic, ``usage_metadata``
    for Gemini).
    """
    for source in (
        _get(response, "additional_kwargs"),
        _get(_get(response, "raw"), "usage"),
        _get(_get(response, "raw"), "usage_metadata"),
        _get(response, "raw"),
    ):
        if source is None:
            continue
        prompt = _int(_get(source, "prompt_tokens"))
        if prompt is None:
            prompt = _int(_get(source, "input_tokens"))
        if prompt is None:
            prompt = _int(_get(source, "prompt_token_count"))
        completion = _int(_get(source, "completion_tokens"))
        if completion is None:
            completion = _int(_get(source, "output_tokens"))
        if completion is None:
            completion = _int(_get(source, "candidates_token_count"))
        if prompt is not None or completion is not None:
            return prompt, completion
    return None, None


def _has_tool_calls(response: Any) -> bool:
    message = _get(response, "message")
    if _get(_get(message, "additional_kwargs"), "tool_calls"):
        return True
    blocks = _get(message, "blocks")
    if isinstance(blocks, (list, tuple)):
        return any(type(block).__name__ == "ToolCallBlock" for block in blocks)
    return False


def finish_reason(response: Any) -> str | None:
    """Why the LLM stopped, where the provider says so, in contract words."""
    raw = _get(response, "raw")
    reason = None
    choices = _get(raw, "choices")
    if isinstance(choices, (list, tuple)) and choices:
        reason = _get(choices[0], "finish_reason")
    if reason is None:
        reason = _get(raw, "finish_reason") or _get(raw, "stop_reason")
    if reason is None:
        reason = _get(_get(response, "additional_kwargs"), "finish_reason")
    if reason is None:
        candidates = _get(raw, "candidates")
        if isinstance(candidates, (list, tuple)) and candidates:
            reason = _get(candidates[0], "finish_reason")
    if reason is None:
        # Nothing said; a message carrying tool calls did stop for them.
        return "tool_calls" if _has_tool_calls(response) else None
    reason = _get(reason, "name") if not isinstance(reason, str) else reason  # enums
    if not isinstance(reason, str) or not reason:
        return None
    reason = reason.lower()
    return _FINISH_WORDS.get(reason, reason)


def tool_args(bound_args: Any) -> Any:
    """The arguments of a tool call, as the agent passed them: the keyword
    dict for ``acall(**kwargs)``, else everything bound."""
    arguments = _get(bound_args, "arguments")
    if not isinstance(arguments, Mapping):
        return None
    positional = arguments.get("args", ())
    keywords = arguments.get("kwargs")
    if set(arguments) <= {"args", "kwargs"} and not positional and isinstance(keywords, Mapping):
        return _without_context(keywords)
    return _without_context(arguments)


def _is_context(value: Any) -> bool:
    # The workflow Context an agent injects into a tool that asks for one
    # (llama-index-core 0.14 FunctionTool.ctx_param_name): its state changes
    # between calls, so hashing it would make identical calls differ.
    kind = type(value)
    return kind.__name__ == "Context" and kind.__module__.startswith(("workflows.", "llama_index."))


def _without_context(arguments: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in arguments.items() if not _is_context(value)}


def tool_result(result: Any) -> tuple[bool, Any, Any]:
    """(success, output, error) from a tool span's result, a ``ToolOutput``."""
    is_error = _get(result, "is_error") is True
    output = text_of(result)
    if output is None and result is not None:
        output = result if isinstance(result, str) else None
    error = None
    if is_error:
        error = _get(result, "exception")
        if not isinstance(error, BaseException):
            error = output
    return not is_error, output, error


def index_name(span_id: str) -> str:
    """The retriever's class (``VectorIndexRetriever``), from its span id."""
    owner = method_of(span_id)[0]
    return owner or "retriever"


def retrieval_scores(nodes: Any) -> tuple[int | None, float | None]:
    """(result count, top score) of a retrieval's ``NodeWithScore`` list."""
    if not isinstance(nodes, (list, tuple)):
        return None, None
    top: float | None = None
    for node in nodes:
        score = _get(node, "score")
        if isinstance(score, (int, float)) and not isinstance(score, bool) and not math.isnan(score):
            top = score if top is None or score > top else top
    return len(nodes), top


def unknown_tool_call(result: Any) -> tuple[str, Any, str | None] | None:
    """(tool name, arguments, error text) when a ``call_tool`` step's
    ``ToolCallResult`` is an error no tool span reported: the model asked
    for a tool the agent does not have (llama-index-core 0.14 answers
    "Tool X not found" without calling anything)."""
    if type(result).__name__ != "ToolCallResult":
        return None
    output = _get(result, "tool_output")
    if _get(output, "is_error") is not True:
        return None
    name = _get(result, "tool_name")
    if not isinstance(name, str) or not name:
        return None
    return name, _get(result, "tool_kwargs"), text_of(output)


def is_iteration_limit(error: Any) -> bool:
    """The agent stopped at ``max_iterations`` (llama-index-core 0.14 raises
    ``WorkflowRuntimeError("Max iterations of N reached! ...")``)."""
    if type(error).__name__ != "WorkflowRuntimeError":
        return False
    try:
        return str(error).startswith("Max iterations of ")
    except Exception:
        return False
