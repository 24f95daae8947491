"""The LangChain translator's model calls: ``llm.called`` when one starts
(the first one tells what the agent is, its model, tools and system prompt),
``llm.responded`` when it ends, failed (its error class, an HTTP error's
signal), closed early (partial) or answered (its tool calls sorted: output
schemas, tools the agent lacks). No framework import."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from dunetrace.api_errors import api_error_signal
from dunetrace.log import warn_once
from dunetrace.model_calls import framework_model_call_ended, framework_model_call_started

from .calls import LLM, _clock
from .opening import OpeningRoots

if TYPE_CHECKING:
    from dunetrace import Run

__all__ = ["ModelCalls", "applied_by_middleware"]

#: Runs whose ``switch_model`` DunetraceMiddleware applied; a model call of
#: any other run with a ``model_override`` warns that it is not applied.
applied_by_middleware: weakref.WeakSet[Run] = weakref.WeakSet()


class ModelCalls(OpeningRoots):
    """The part of ``Translator`` that reports model calls."""

    def llm_start(
        self,
        run_id: Any,
        parent_id: Any,
        name: str,
        model: str | None,
        tools: list[str] | None,
        system_prompt: Any,
        user_input: Any,
        asynchronous: bool = False,
        *,
        describe: Callable[[], tuple[list[str] | None, Any]] | None = None,
        output_tools: frozenset[str] | None = None,
    ) -> None:
        """``describe``: gives (tools, system_prompt) instead, read only when
        this call starts the run. ``output_tools``: tool names this call
        binds as an output schema, not as tools of the agent."""
        key = run_id.int if run_id.__class__ is UUID else self._key(run_id, "on_llm_start")
        if key is None:
            return
        # A call under a live parent (nearly every one): child(), one lookup.
        node = self.child(key, parent_id.int, LLM) if parent_id.__class__ is UUID else False
        if node is False:
            node = self._enter(key, parent_id, LLM, name, user_input, asynchronous)
        if node is None:
            return
        if output_tools and not output_tools <= node.root.output_tools:
            node.root.output_tools = node.root.output_tools | output_tools
        if not node.run.started:
            if describe is not None:
                tools, system_prompt = describe()
            self._ensure_started(node, model, tools, system_prompt)
        run = node.run
        # First: after a stop policy it raises PolicyViolation, and nothing
        # below must then count a call that never happens.
        node.step = run.llm_called(model)
        if run.model_override is not None or run._prompt_additions:
            self._unapplied(run)
        with self._lock:
            node.root.open_llms += 1
        # Wrapped OpenAI/Anthropic clients stay silent in this call's context.
        node.model_call = framework_model_call_started(run)
        node.name = model or name
        node.started_at = _clock()

    @staticmethod
    def _unapplied(run: Run) -> None:
        # DunetraceMiddleware applies both before the model is called; left
        # pending here, nothing will (a plain graph, an agent without it).
        instead = (
            "add dunetrace.integrations.langchain.DunetraceMiddleware() to create_agent(middleware=[...]), "
            "or read run.model_override / run.pop_prompt_addition() in your own model node"
        )
        if run.model_override is not None and run not in applied_by_middleware:
            warn_once(
                "langchain-unapplied:switch_model",
                "dunetrace: a switch_model policy triggered but LangChain calls the agent's own model: %s",
                instead,
            )
        if run._prompt_additions:
            warn_once(
                "langchain-unapplied:inject_prompt",
                "dunetrace: an inject_prompt policy triggered but nothing adds its message to this LangChain agent: %s",
                instead,
            )

    def llm_end(
        self,
        run_id: Any,
        completion_tokens: Any = None,
        prompt_tokens: Any = None,
        finish_reason: str | None = None,
        output: Any = None,
        output_length: int | None = None,
        final: bool = True,
        *,
        error: BaseException | None = None,
        tool_calls: list[tuple[str, str, Any]] | None = None,
    ) -> None:
        """``tool_calls``: ``(tool_call_id, name, args)`` of the reply's tool
        calls, given when it has any."""
        node, is_root = self._leave_call(run_id, "on_llm_end")
        if node is None or node.kind != LLM:
            if is_root and node is not None:
                self._end_root(node, None)  # a mismatched end of a root still ends its run
            return
        run, root = node.run, node.root
        with self._lock:
            if root.open_llms:
                root.open_llms -= 1
        framework_model_call_ended(node.model_call)
        latency = (_clock() - node.started_at) * 1000
        if error is not None:
            if isinstance(error, GeneratorExit):
                # The reader of this model's stream closed it early: no failure.
                run.llm_responded(latency_ms=latency, finish_reason="partial", step=node.step)
            else:
                run.llm_responded(latency_ms=latency, finish_reason="error", step=node.step, error=error)
                signal = api_error_signal(error)
                if signal is not None:
                    run.external_signal(signal[0], source="langchain", **signal[1])
        else:
            if tool_calls:
                final = self._sort_tool_calls(root, run, tool_calls, final)
            run.llm_responded(
                completion_tokens,
                latency,
                finish_reason,
                output_length,
                prompt_tokens=prompt_tokens,
                output=output,
                step=node.step,
            )
            root.final = final
        if is_root:
            self._end_root(node, error)
