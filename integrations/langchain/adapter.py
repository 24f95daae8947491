"""The LangChain callback handler: reads LangChain's objects, calls the
translator. Imports langchain-core, so it is only imported on first use
(see ``__init__.py``)."""

from __future__ import annotations

import sys
from inspect import CO_COROUTINE
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from dunetrace import Dunetrace
from dunetrace.hashing import canonical_json
from dunetrace.log import ErrorGuard

from .framework_state import context_parent, tool_error_was_handled
from .resume import thread_id_of
from .structured_output import agent_tools, schema_tool_name
from .translator import CHAIN, Translator
from .unknown_tools import tool_answers

__all__ = ["DunetraceCallbackHandler"]

# dicts and lists are what LangChain hands over; exact type checks are
# several times cheaper than the Mapping / Sequence ABCs on this hot path.
_DICT = dict
_SEQ = (list, tuple)


def _guard(callback: str) -> ErrorGuard:
    return ErrorGuard(f"langchain.{callback}")


# One guard per callback, made once (they hold no state). A callback body
# runs in try / except, free on the happy path (a ``with`` costs two method
# calls per callback), and hands what it caught to its guard: our own errors
# are logged once per callback and cause (re-raised in strict mode), and
# PolicyViolation goes through to the agent.
_G_ON_CHAIN_END = _guard("on_chain_end")
_G_ON_CHAIN_ERROR = _guard("on_chain_error")
_G_ON_CHAIN_START = _guard("on_chain_start")
_G_ON_CHAT_MODEL_START = _guard("on_chat_model_start")
_G_ON_LLM_END = _guard("on_llm_end")
_G_ON_LLM_ERROR = _guard("on_llm_error")
_G_ON_LLM_START = _guard("on_llm_start")
_G_ON_RETRIEVER_END = _guard("on_retriever_end")
_G_ON_RETRIEVER_ERROR = _guard("on_retriever_error")
_G_ON_RETRIEVER_START = _guard("on_retriever_start")
_G_ON_TOOL_END = _guard("on_tool_end")
_G_ON_TOOL_ERROR = _guard("on_tool_error")
_G_ON_TOOL_START = _guard("on_tool_start")

_INPUT_KEYS = ("input", "question", "query", "user_input", "prompt")
_SCORE_KEYS = ("score", "relevance_score", "similarity_score", "_score")


# -- reading LangChain's values (duck-typed: garbage in, None out) -------------


def _name(serialized: Any, kwargs: dict[str, Any], fallback: str) -> str:
    # LangGraph passes serialized=None and the name in kwargs (langchain-core 1.x).
    name = kwargs.get("name")
    if isinstance(name, str) and name:
        return name
    if isinstance(serialized, _DICT):
        name = serialized.get("name")
        if isinstance(name, str) and name:
            return name
        ids = serialized.get("id")
        if isinstance(ids, list) and ids and isinstance(ids[-1], str):
            return ids[-1]
    return fallback


def _text(content: Any) -> str:
    """The text of message content: a string, or a list of blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, _DICT) and isinstance(block.get("text"), str):
                parts.append(block["text"])
        return "".join(parts)
    return ""


def _role_and_content(message: Any) -> tuple[Any, Any]:
    if isinstance(message, (tuple, list)) and len(message) == 2:
        return message[0], message[1]
    if isinstance(message, _DICT):
        return message.get("role") or message.get("type"), message.get("content")
    return getattr(message, "type", None), getattr(message, "content", None)


def _last_user_text(messages: Any) -> Any:
    if isinstance(messages, _SEQ):
        for message in reversed(messages):
            role, content = _role_and_content(message)
            if role in ("human", "user"):
                return _text(content) or content
    return None


def user_input_of(inputs: Any) -> Any:
    """What the user asked: the last human message, an ``input``-like field,
    or the whole input. Only hashed (and scanned for injection) in-process."""
    if inputs is None or isinstance(inputs, str):
        return inputs
    if isinstance(inputs, _DICT):
        if "messages" in inputs:
            found = _last_user_text(inputs["messages"])
            if found is not None:
                return found
        for key in _INPUT_KEYS:
            if isinstance(inputs.get(key), str):
                return inputs[key]
        return inputs
    found = _last_user_text(inputs)
    return found if found is not None else inputs


def _model(serialized: Any, metadata: Any, params: Any) -> str | None:
    if isinstance(metadata, _DICT) and isinstance(metadata.get("ls_model_name"), str):
        return metadata["ls_model_name"]
    for source in (params, serialized.get("kwargs") if isinstance(serialized, _DICT) else None):
        if isinstance(source, _DICT):
            for key in ("model", "model_name", "model_id"):
                if isinstance(source.get(key), str) and source[key]:
                    return source[key]
    return None


def _tool_names(params: Any) -> list[str]:
    tools = params.get("tools") if isinstance(params, _DICT) else None
    names: list[str] = []
    if isinstance(tools, _SEQ):
        for tool in tools:
            if isinstance(tool, str):
                name: Any = tool
            elif isinstance(tool, _DICT):  # OpenAI {"function": {"name"}} or Anthropic {"name"}
                function = tool.get("function")
                name = function.get("name") if isinstance(function, _DICT) else tool.get("name")
            else:
                name = getattr(tool, "name", None)
            if isinstance(name, str) and name:
                names.append(name)
    return names


def _system_prompt(messages: Any) -> Any:
    if isinstance(messages, _SEQ) and messages and isinstance(messages[0], _SEQ):
        for message in messages[0]:
            role, content = _role_and_content(message)
            if role == "system":
                return _text(content) or content
    return None


def _usage(message: Any, llm_output: Any) -> tuple[Any, Any]:
    usage = getattr(message, "usage_metadata", None)
    if isinstance(usage, _DICT):
        return usage.get("input_tokens"), usage.get("output_tokens")
    if isinstance(llm_output, _DICT):
        usage = llm_output.get("token_usage") or llm_output.get("usage")
        if isinstance(usage, _DICT):
            prompt = usage.get("prompt_tokens", usage.get("input_tokens"))
            return prompt, usage.get("completion_tokens", usage.get("output_tokens"))
    return None, None


def _finish_reason(generation: Any, message: Any) -> str | None:
    # As the provider gave it ("tool_calls", "length", Anthropic's "tool_use"):
    # a missing reason stays missing rather than becoming "stop".
    info = getattr(generation, "generation_info", None)
    if info.__class__ is dict:  # where LangChain's chat models put it: one lookup
        reason = info.get("finish_reason")
        if reason.__class__ is str and reason:
            return reason
    for source in (getattr(generation, "generation_info", None), getattr(message, "response_metadata", None)):
        if isinstance(source, _DICT):
            for key in ("finish_reason", "stop_reason"):
                reason = source.get(key)
                if isinstance(reason, str) and reason:
                    return reason
    return None


def read_llm_result(
    response: Any,
) -> tuple[Any, Any, str | None, Any, int | None, bool, list[tuple[str, str, Any]]]:
    """``(completion_tokens, prompt_tokens, finish_reason, output,
    output_length, final, tool_calls)`` of an ``LLMResult``: the arguments
    of ``Translator.llm_end`` after the run id. ``tool_calls``: the
    ``(tool_call_id, name, args)`` of the reply's tool calls (as
    ``unknown_tools.tool_calls_of`` reads them), read in the same pass."""
    generations = getattr(response, "generations", None)
    generation = None
    if isinstance(generations, _SEQ) and generations:
        first = generations[0]
        if isinstance(first, _SEQ) and first:
            generation = first[0]
    message = getattr(generation, "message", None)
    prompt_tokens, completion_tokens = _usage(message, getattr(response, "llm_output", None))
    finish = _finish_reason(generation, message)
    text = _text(getattr(message, "content", None)) if message is not None else getattr(generation, "text", None)
    tool_calls = getattr(message, "tool_calls", None) or None
    output: Any = text if isinstance(text, str) else ""
    named: list[tuple[str, str, Any]] = []
    if tool_calls:
        # A reply made only of tool calls is not empty: the calls count as
        # output. Alone, the list itself is handed over: the core writes it
        # as canonical JSON once for both hash and length (a JSON string
        # would be parsed back and written again).
        calls: list[Any] = []
        for call in tool_calls:
            if isinstance(call, _DICT):
                name, args = call.get("name"), call.get("args")
                calls.append([name, args])
                call_id = call.get("id")
                if isinstance(call_id, str) and isinstance(name, str):
                    named.append((call_id, name, args))
            else:
                calls.append(repr(call))
        output = f"{output}\n{canonical_json(calls)}" if output else calls
    final = not tool_calls and finish not in ("tool_calls", "tool_use", "function_call")
    if generation is None:
        return completion_tokens, prompt_tokens, finish, None, None, final, named
    # The length of a list output is measured by the core on its JSON text.
    length = len(output) if output.__class__ is str else None
    return completion_tokens, prompt_tokens, finish, output, length, final, named


def _documents(documents: Any) -> tuple[int | None, float | None]:
    if not isinstance(documents, _SEQ):
        return None, None
    top: float | None = None
    for doc in documents:
        metadata = getattr(doc, "metadata", None)
        if isinstance(metadata, _DICT):
            for key in _SCORE_KEYS:
                score = metadata.get(key)
                if isinstance(score, (int, float)) and not isinstance(score, bool):
                    top = score if top is None else max(top, score)
                    break
    return len(documents), top


# ``_getframe(1).f_code.co_flags & CO_COROUTINE`` in a start callback: whether
# LangChain's async dispatch is calling the handler (inline, as
# ``run_inline`` asks) rather than its sync ``handle_event``. Written inline
# at each call: it runs on every start.


# -- the handler ---------------------------------------------------------------


class DunetraceCallbackHandler(BaseCallbackHandler):
    """Reports each LangChain / LangGraph invoke as a Dunetrace run.

    ``agent.invoke(inputs, config={"callbacks": [handler]})``. One handler can
    serve any number of threads and tasks at once. ``agent_id`` defaults to
    the name of the invoked runnable (``"LangGraph"``, or the agent's name).
    """

    # Called inline under ainvoke (not via run_in_executor, the default for a
    # sync handler in langchain-core 1.x): events stay in order, cost less,
    # and the contextvar set for a run reaches the agent's tools.
    run_inline = True
    # LangChain's callback manager re-raises only for a handler with
    # raise_error (langchain-core 1.x). Every callback body is guarded and
    # swallows our own errors, so what gets through is PolicyViolation,
    # raised by the next model or tool call after a stop policy triggered.
    raise_error = True
    # (not ignore_agent: langchain-core 1.x gates the tool events on it too)
    ignore_retry = True
    ignore_custom_event = True

    def __init__(self, dt: Dunetrace, agent_id: str | None = None, *, max_live_runs: int = 1000) -> None:
        if not isinstance(dt, Dunetrace):
            raise TypeError(f"DunetraceCallbackHandler(dt, ...) needs a dunetrace.Dunetrace client; got {dt!r}")
        if agent_id is not None and (not isinstance(agent_id, str) or not agent_id.strip()):
            raise ValueError(f"agent_id must be a non-empty string or None; got {agent_id!r}")
        if not isinstance(max_live_runs, int) or max_live_runs < 1:
            raise ValueError(f"max_live_runs must be a positive int; got {max_live_runs!r}")
        super().__init__()
        self.translator = Translator(dt, agent_id, max_live_runs=max_live_runs, read_input=user_input_of)

    @property
    def client(self) -> Dunetrace:
        return self.translator.client

    @property
    def agent_id(self) -> str | None:
        return self.translator.agent_id

    def __repr__(self) -> str:
        return f"<DunetraceCallbackHandler agent_id={self.agent_id!r}>"

    # -- chains -------------------------------------------------------------------

    def on_chain_start(
        self,
        serialized: Any = None,
        inputs: Any = None,
        *,
        run_id: Any = None,
        parent_run_id: Any = None,
        **kwargs: Any,
    ) -> None:
        try:
            translator = self.translator
            if parent_run_id is None:  # a fallback's attempt may say it only in the context
                parent_run_id = context_parent()
            # create_agent(name=...) marks its calls ``lc_agent_name``: a
            # chain of another named agent than its parent's opens a sub-agent.
            metadata = kwargs.get("metadata")
            agent = metadata.get("lc_agent_name") if metadata.__class__ is dict else None
            # Most chain starts are a graph's nodes and steps under a live
            # call: one lookup, without reading the name or the frame.
            if (
                run_id.__class__ is UUID
                and parent_run_id.__class__ is UUID
                and translator.child(run_id.int, parent_run_id.int, CHAIN, agent) is not False
            ):
                return
            translator.chain_start(
                run_id,
                parent_run_id,
                _name(serialized, kwargs, "chain"),
                inputs,
                bool(sys._getframe(1).f_code.co_flags & CO_COROUTINE),
                agent_name=agent if isinstance(agent, str) else None,
                thread_id=thread_id_of(metadata),
            )
        except Exception as exc:
            if not _G_ON_CHAIN_START.__exit__(type(exc), exc, None):
                raise

    def on_chain_end(self, outputs: Any = None, *, run_id: Any = None, **kwargs: Any) -> None:
        try:
            translator = self.translator
            if translator.invented_pending:  # a call of a tool the agent lacks awaits its answer
                translator.tool_answers(run_id, tool_answers(outputs))
            translator.chain_end(run_id)
        except Exception as exc:
            if not _G_ON_CHAIN_END.__exit__(type(exc), exc, None):
                raise

    def on_chain_error(self, error: Any = None, *, run_id: Any = None, **kwargs: Any) -> None:
        try:
            self.translator.chain_end(run_id, error if isinstance(error, BaseException) else RuntimeError("unknown"))
        except Exception as exc:
            if not _G_ON_CHAIN_ERROR.__exit__(type(exc), exc, None):
                raise

    # -- models -------------------------------------------------------------------

    def on_chat_model_start(
        self,
        serialized: Any = None,
        messages: Any = None,
        *,
        run_id: Any = None,
        parent_run_id: Any = None,
        metadata: Any = None,
        invocation_params: Any = None,
        **kwargs: Any,
    ) -> None:
        try:
            self._llm_start(
                serialized,
                run_id,
                parent_run_id,
                metadata,
                invocation_params,
                kwargs,
                messages,
                messages[0] if isinstance(messages, list) and messages else None,
                bool(sys._getframe(1).f_code.co_flags & CO_COROUTINE),
            )
        except Exception as exc:
            if not _G_ON_CHAT_MODEL_START.__exit__(type(exc), exc, None):
                raise

    def on_llm_start(
        self,
        serialized: Any = None,
        prompts: Any = None,
        *,
        run_id: Any = None,
        parent_run_id: Any = None,
        metadata: Any = None,
        invocation_params: Any = None,
        **kwargs: Any,
    ) -> None:
        try:
            prompt = prompts[0] if isinstance(prompts, list) and prompts else None
            self._llm_start(
                serialized,
                run_id,
                parent_run_id,
                metadata,
                invocation_params,
                kwargs,
                None,
                prompt,
                bool(sys._getframe(1).f_code.co_flags & CO_COROUTINE),
            )
        except Exception as exc:
            if not _G_ON_LLM_START.__exit__(type(exc), exc, None):
                raise

    def _llm_start(
        self,
        serialized: Any,
        run_id: Any,
        parent_run_id: Any,
        metadata: Any,
        params: Any,
        kwargs: dict[str, Any],
        messages: Any,
        prompt: Any,
        asynchronous: bool,
    ) -> None:
        model = _model(serialized, metadata, params)
        name = _name(serialized, kwargs, "llm")
        if parent_run_id is None:  # a fallback's attempt may say it only in the context
            parent_run_id = context_parent()
        options = kwargs.get("options")
        # with_structured_output marks its calls (langchain-core 1.x); others pay one lookup.
        schema = (
            schema_tool_name(options)
            if options.__class__ is dict and "ls_structured_output_format" in options
            else None
        )
        output_tools = frozenset((schema,)) if schema else None

        def describe() -> tuple[list[str], Any]:
            bound, output = agent_tools(_tool_names(params))
            if output_tools:
                bound = [tool for tool in bound if tool not in output_tools]
            if output:
                self.translator.output_tools_seen(run_id, output)
            return bound, _system_prompt(messages)

        # Tool names and system prompt only matter to the call that starts
        # the run (the first one): read then, not on every model call.
        self.translator.llm_start(
            run_id,
            parent_run_id,
            name,
            model,
            None,
            None,
            prompt,
            asynchronous,
            describe=describe,
            output_tools=output_tools,
        )

    def on_llm_end(self, response: Any = None, *, run_id: Any = None, **kwargs: Any) -> None:
        try:
            completion, prompt, finish, output, length, final, calls = read_llm_result(response)
            # Tool calls, when there are: to an output schema, or to tools the agent may not have.
            self.translator.llm_end(
                run_id, completion, prompt, finish, output, length, final, tool_calls=calls if calls else None
            )
        except Exception as exc:
            if not _G_ON_LLM_END.__exit__(type(exc), exc, None):
                raise

    def on_llm_error(self, error: Any = None, *, run_id: Any = None, **kwargs: Any) -> None:
        try:
            self.translator.llm_end(run_id, error=error if isinstance(error, BaseException) else RuntimeError())
        except Exception as exc:
            if not _G_ON_LLM_ERROR.__exit__(type(exc), exc, None):
                raise

    # -- tools --------------------------------------------------------------------

    def on_tool_start(
        self,
        serialized: Any = None,
        input_str: Any = None,
        *,
        run_id: Any = None,
        parent_run_id: Any = None,
        inputs: Any = None,
        **kwargs: Any,
    ) -> None:
        try:
            # ``inputs`` is the structured args dict; input_str its repr.
            # langchain-core 1.8 leaves injected arguments out of
            # ``inputs``: InjectedState, InjectedStore, ToolRuntime,
            # InjectedToolCallId; a RunnableConfig argument is never in it.
            args = inputs if inputs is not None else input_str
            if parent_run_id is None:  # a fallback's attempt may say it only in the context
                parent_run_id = context_parent()
            self.translator.tool_start(
                run_id,
                parent_run_id,
                _name(serialized, kwargs, "tool"),
                args,
                bool(sys._getframe(1).f_code.co_flags & CO_COROUTINE),
                call_id=kwargs.get("tool_call_id"),
            )
        except Exception as exc:
            if not _G_ON_TOOL_START.__exit__(type(exc), exc, None):
                raise

    def on_tool_end(self, output: Any = None, *, run_id: Any = None, **kwargs: Any) -> None:
        try:
            # A tool that handles its own error returns ToolMessage(status="error").
            if getattr(output, "status", None) == "error":
                self.translator.tool_end(run_id, failed=True, error=_text(getattr(output, "content", None)))
                return
            if output.__class__ is str and tool_error_was_handled():
                # The same, for a call without a tool_call_id: the error text alone.
                self.translator.tool_end(run_id, failed=True, error=output)
                return
            content = getattr(output, "content", output)
            self.translator.tool_end(run_id, output=_text(content) if isinstance(content, list) else content)
        except Exception as exc:
            if not _G_ON_TOOL_END.__exit__(type(exc), exc, None):
                raise

    def on_tool_error(self, error: Any = None, *, run_id: Any = None, **kwargs: Any) -> None:
        try:
            self.translator.tool_end(run_id, failed=True, error=error if isinstance(error, BaseException) else None)
        except Exception as exc:
            if not _G_ON_TOOL_ERROR.__exit__(type(exc), exc, None):
                raise

    # -- retrievers ---------------------------------------------------------------

    def on_retriever_start(
        self, serialized: Any = None, query: Any = None, *, run_id: Any = None, parent_run_id: Any = None, **kwargs: Any
    ) -> None:
        try:
            if parent_run_id is None:  # a fallback's attempt may say it only in the context
                parent_run_id = context_parent()
            self.translator.retriever_start(
                run_id,
                parent_run_id,
                _name(serialized, kwargs, "retriever"),
                query,
                bool(sys._getframe(1).f_code.co_flags & CO_COROUTINE),
            )
        except Exception as exc:
            if not _G_ON_RETRIEVER_START.__exit__(type(exc), exc, None):
                raise

    def on_retriever_end(self, documents: Any = None, *, run_id: Any = None, **kwargs: Any) -> None:
        try:
            count, top = _documents(documents)
            self.translator.retriever_end(run_id, result_count=count, top_score=top)
        except Exception as exc:
            if not _G_ON_RETRIEVER_END.__exit__(type(exc), exc, None):
                raise

    def on_retriever_error(self, error: Any = None, *, run_id: Any = None, **kwargs: Any) -> None:
        try:
            self.translator.retriever_end(run_id, error=error if isinstance(error, BaseException) else RuntimeError())
        except Exception as exc:
            if not _G_ON_RETRIEVER_ERROR.__exit__(type(exc), exc, None):
                raise
