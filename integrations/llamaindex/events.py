"""The event half of the translator: LLM calls, retrievals, embeddings and
cancellations, from LlamaIndex's instrumentation events (start/end pairs
carrying the span id of the method that emitted them). Imports no
LlamaIndex; :class:`EventTranslator` is mixed into the Translator, whose
span and run tables it reads."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dunetrace.api_errors import api_error_signal
from dunetrace.exit_reasons import FINAL_ANSWER
from dunetrace.log import warn_once
from dunetrace.model_calls import framework_model_call_ended, framework_model_call_started

from . import readers
from .state import CallState, RunState, SpanState, clock

if TYPE_CHECKING:
    from dunetrace.open_runs import OpenRuns

__all__ = ["EventTranslator"]

_clock = clock


class EventTranslator:
    """LLM, retrieval, embedding and cancellation events, by class name."""

    if TYPE_CHECKING:
        _lock: threading.Lock
        _spans: dict[str, SpanState]
        _runs: OpenRuns[str, RunState]
        _llm: dict[str, CallState]
        _retrievals: dict[str, CallState]
        _embeddings: dict[str, CallState]
        _on_event: dict[str, Callable[[Any, str], None]]
        max_calls: int

        def _finish(self, state: RunState, error: BaseException | None, exit_reason: str) -> None: ...

    def wants(self, event: Any) -> bool:
        """Cheap: is this an event class the translator reads at all?"""
        return type(event).__name__ in self._on_event

    def handle(self, event: Any) -> None:
        method = self._on_event.get(type(event).__name__)
        if method is None:
            return
        span_id = getattr(event, "span_id", None)
        if isinstance(span_id, str):
            method(event, span_id)

    def _inside(self, span: SpanState, calls: dict[str, CallState]) -> bool:
        """Is an ancestor span of the same run in the middle of such a call?"""
        state = span.state
        parent_id = span.parent
        for _ in range(64):
            if parent_id is None:
                return False
            call = calls.get(parent_id)
            if call is not None and call.state is state:
                return True
            parent = self._spans.get(parent_id)
            if parent is None or parent.state is not state:
                return False
            parent_id = parent.parent
        return False

    def _start(self, span_id: str, calls: dict[str, CallState]) -> SpanState | None:
        span = self._spans.get(span_id)
        if span is None or span.state.run.finished or self._inside(span, calls):
            return None
        return span

    def _remember(self, calls: dict[str, CallState], span_id: str, call: CallState) -> None:
        with self._lock:
            calls[span_id] = call
            if len(calls) > self.max_calls:
                old = calls.pop(next(iter(calls)))
                if calls is self._llm:
                    old.state.open_llm -= 1
                    framework_model_call_ended(old.model_call)
                warn_once(
                    "llamaindex-call-bound",
                    "dunetrace: over %d LlamaIndex calls open; the oldest are forgotten",
                    self.max_calls,
                )

    def _take(self, calls: dict[str, CallState], span_id: str) -> CallState | None:
        with self._lock:
            call = calls.pop(span_id, None)
            if call is not None and calls is self._llm:
                call.state.open_llm -= 1
        return call

    def _llm_start(self, event: Any, span_id: str) -> None:
        span = self._start(span_id, self._llm)
        if span is None:
            return
        run = span.state.run
        if run._violation is not None:
            return  # stopped: the policy callback raises for this call
        # The prompt is not hashed: no detector reads it, and joining a long
        # chat history on every call is the costliest thing this could do.
        step = run.llm_called(readers.llm_model(getattr(event, "model_dict", None)))
        with self._lock:  # one user run may be fed from several threads
            span.state.open_llm += 1
        call = CallState(span.state, step)
        # Client wrappers (OpenAI, Anthropic) stay silent in this context.
        call.model_call = framework_model_call_started(run)
        self._remember(self._llm, span_id, call)

    def _llm_end(self, event: Any, span_id: str) -> None:
        call = self._take(self._llm, span_id)
        if call is not None:
            self._llm_done(call, getattr(event, "response", None), None)

    def _llm_error(self, event: Any, span_id: str) -> None:
        # Raised while a stream was being read (llama-index-core 0.14 emits
        # ExceptionEvent then, and no end event).
        call = self._take(self._llm, span_id)
        if call is not None:
            # Closing a stream early raises GeneratorExit inside the LLM's
            # generator; LlamaIndex reports it as an ExceptionEvent too.
            error = getattr(event, "exception", None)
            self._api_error(call, error)  # before the call may end its run
            stopped = self._stopped(call.state)
            failure = error if isinstance(error, BaseException) and not stopped else None
            self._llm_done(call, None, "partial" if stopped else "error", error=failure)

    @staticmethod
    def _api_error(call: CallState, error: Any) -> None:
        """A model call the provider's API refused (an HTTP status error):
        an ``external.signal`` ``rate_limit`` or ``api_error`` with the
        status and the exception's class, as the wrapped clients send."""
        found = api_error_signal(error)
        run = call.state.run
        if found is not None and not run.finished:
            run.external_signal(found[0], source="llamaindex", **found[1])

    def _stopped(self, state: RunState) -> bool:
        if state.stopped:
            return True
        # The call may be tracked under the relayed stream's own span state.
        with self._lock:
            return any(other.stopped for other in self._runs.values() if other.run is state.run)

    def _llm_done(self, call: CallState, response: Any, reason: str | None, error: BaseException | None = None) -> None:
        state = call.state
        run = state.run
        framework_model_call_ended(call.model_call)
        if not run.finished:
            prompt_tokens, completion_tokens = readers.token_usage(response)
            run.llm_responded(
                completion_tokens,
                (_clock() - call.started) * 1000,
                reason or readers.finish_reason(response),
                prompt_tokens=prompt_tokens,
                output=readers.completion_text(response),
                step=call.step,
                error=error,
            )
        if state.pending and state.open_llm <= 0:
            with self._lock:
                if self._runs.pop(state.root, state) is None:
                    return  # finished meanwhile by another thread
            self._finish(state, None, FINAL_ANSWER)

    def _retrieval_start(self, event: Any, span_id: str) -> None:
        span = self._start(span_id, self._retrievals)
        if span is None:
            return
        name = readers.index_name(span_id)
        query = readers.text_of(getattr(event, "str_or_query_bundle", None))
        step = span.state.run.retrieval_called(name, query)
        self._remember(self._retrievals, span_id, CallState(span.state, step, name))

    def _retrieval_end(self, event: Any, span_id: str) -> None:
        call = self._take(self._retrievals, span_id)
        if call is not None:
            self._retrieval_done(call, getattr(event, "nodes", None))

    def _retrieval_done(self, call: CallState, nodes: Any) -> None:
        run = call.state.run
        if run.finished:
            return
        count, top = readers.retrieval_scores(nodes)
        run.retrieval_responded(call.name, count, top, (_clock() - call.started) * 1000, step=call.step)  # type: ignore[arg-type]

    # -- cancellation and embeddings ---------------------------------------------

    def _span_cancelled(self, event: Any, span_id: str) -> None:
        # workflows 2.x emits SpanCancelledEvent from the run span on
        # handler.cancel_run(), and from a step span cancelled mid-way.
        span = self._spans.get(span_id)
        if span is None:
            return
        if span.state.root == span_id:
            span.state.cancelled = True
        else:
            span.state.cut = True

    def _embedding_start(self, event: Any, span_id: str) -> None:
        span = self._start(span_id, self._embeddings)
        if span is not None:
            model = readers.llm_model(getattr(event, "model_dict", None))
            self._remember(self._embeddings, span_id, CallState(span.state, 0, model or ""))

    def _embedding_end(self, event: Any, span_id: str) -> None:
        call = self._take(self._embeddings, span_id)
        if call is None or call.state.run.finished:
            return
        chunks = getattr(event, "chunks", None)
        call.state.run.embedding(
            call.name or None,
            len(chunks) if isinstance(chunks, list) else None,
            (_clock() - call.started) * 1000,
            source="llamaindex",
        )
