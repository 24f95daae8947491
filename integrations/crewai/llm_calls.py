"""CrewAI LLM events as Dunetrace LLM calls: the part of the
:class:`~.translator.Translator` that handles them. Imports no framework.

Besides the calls themselves, an LLM call's messages show two things no
CrewAI 1.15 event reports: CrewAI's instruction to answer now, sent once an
agent reached ``max_iter`` (its run ends ``max_iterations``), and its refusal
of a tool call that repeats the previous one exactly (ReAct agents), which
runs no tool and emits no tool event: each refusal is reported as a failed
call of that tool with those arguments, so a loop stays visible.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dunetrace.api_errors import status_signal_name
from dunetrace.log import warn_once

from .readers import count_in_messages, elapsed_ms, last_message_has, reported_error, token_count

if TYPE_CHECKING:
    from .errors import FailureLog
    from .readers import RunState

__all__ = ["LLMCalls"]


class LLMCalls:
    """Mixed into the Translator: LLM events in, LLM calls out."""

    failures: FailureLog
    forced_answer_text: str | None
    refused_call_text: str | None

    def _state_for(self, event: Any) -> RunState | None:  # pragma: no cover - the Translator's
        raise NotImplementedError

    def _refused_calls(self, state: RunState, messages: Any) -> None:
        text = self.refused_call_text
        if not text or state.last_tool is None:
            return
        seen = count_in_messages(messages, text)
        if seen <= state.refusals_seen:
            return
        name, args = state.last_tool
        run = state.run
        for _ in range(seen - state.refusals_seen):
            step = run.tool_called(name, args)
            run.tool_responded(name, False, error="CrewAI refused a repeated tool call", step=step)
        state.refusals_seen = seen

    # -- LLM calls ----------------------------------------------------------------

    def _llm_started(self, event: Any, source: Any) -> None:
        state = self._state_for(event)
        if state is None:
            return
        run = state.run
        messages = getattr(event, "messages", None)
        self._refused_calls(state, messages)
        state.failed_tools.clear()
        marker = self.forced_answer_text
        if marker and last_message_has(messages, marker):
            state.forced_answer = True
        step = run.llm_called(getattr(event, "model", None))
        call_id = getattr(event, "call_id", None) or getattr(event, "event_id", None)
        state.llm_calls[str(call_id)] = (step, getattr(event, "timestamp", None))

    def _llm_call(self, event: Any) -> tuple[RunState, int, Any] | None:
        state = self._state_for(event)
        if state is None:
            return None
        call = state.llm_calls.pop(str(getattr(event, "call_id", None)), None)
        if call is None:
            call = state.llm_calls.pop(str(getattr(event, "started_event_id", None)), None)
        if call is None:
            warn_once("crewai-llm-unpaired", "dunetrace: a CrewAI LLM call ended that was never seen starting")
            return None
        return state, call[0], call[1]

    def _llm_completed(self, event: Any, source: Any) -> None:
        found = self._llm_call(event)
        if found is None:
            return
        state, step, started = found
        usage = getattr(event, "usage", None)
        response = getattr(event, "response", None)
        finish_reason = getattr(event, "finish_reason", None)
        if not isinstance(finish_reason, str) or not finish_reason:
            # Custom BaseLLMs rarely report one; CrewAI sets call_type
            # TOOL_CALL (or hands back a list of tool calls) for tool use.
            call_type = getattr(getattr(event, "call_type", None), "value", None)
            finish_reason = "tool_calls" if call_type == "tool_call" or isinstance(response, list) else "stop"
        state.run.llm_responded(
            token_count(usage, "completion_tokens", "output_tokens"),
            elapsed_ms(started, getattr(event, "timestamp", None)),
            finish_reason,
            prompt_tokens=token_count(usage, "prompt_tokens", "input_tokens"),
            output=response if response is not None else "",
            step=step,
        )

    def _llm_failed(self, event: Any, source: Any) -> None:
        found = self._llm_call(event)
        if found is None:
            return
        state, step, started = found
        failure = self.failures.pop(getattr(event, "event_id", None))
        error = reported_error(getattr(event, "error", None), failure.error_type if failure else None)
        state.run.llm_responded(
            latency_ms=elapsed_ms(started, getattr(event, "timestamp", None)),
            finish_reason="error",
            step=step,
            error=error,
        )
        if failure is not None and failure.http_status is not None:
            # The API's answer, as the client wrappers report it.
            state.run.external_signal(
                status_signal_name(failure.http_status),
                source="crewai",
                http_status=failure.http_status,
                error_type=failure.error_type,
            )
