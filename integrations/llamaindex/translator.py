"""LlamaIndex spans and events, turned into Dunetrace runs and events.

No LlamaIndex import here: the adapter hands over span ids, instances,
results and event objects, and a ``classify(instance, method)`` function that
knows the framework's classes. Tests drive this class with plain fakes.

How LlamaIndex (llama-index-core 0.14, llama-index-instrumentation 0.6)
reports work, and what is made of it:

* Every instrumented method is a span ``<Class>.<method>-<uuid4>`` whose
  parent is the span active in the caller's context. A top-level
  ``Workflow.run`` (``FunctionAgent``, ``ReActAgent``, ``AgentWorkflow``) or
  query/chat engine call opens a Dunetrace run; spans below it belong to it.
  A ``Workflow.run`` below another run (an agent used as a tool) is a child
  run. A run the caller opened (``with dt.run(...)``) takes the events
  instead of a new run.
* Tools emit no event, they are spans (``FunctionTool.acall``); the result
  is a ``ToolOutput`` with ``is_error``; a raising tool drops its span.
* LLM calls and retrievals are start/end events carrying the span id of the
  method that emitted them. One method calling another (MockLLM ``acomplete``
  calls ``complete``) emits nested pairs: only the outermost counts.
* A streamed LLM call's span exits when the generator is returned; its end
  event comes when the stream is drained, so LLM calls are tracked by span id
  apart from spans, and a run whose span exits with a stream still open
  finishes when the stream ends.

State is keyed by span id, bounded, and dropped when the run ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dunetrace.log import warn_once
from dunetrace.model_calls import FrameworkModelCall, framework_model_call_ended, framework_model_call_started
from dunetrace.run import get_current_run

from . import readers
from .streams import relay_tokens

if TYPE_CHECKING:
    from dunetrace import Dunetrace, Run

__all__ = ["ENGINE", "OTHER", "TOOL", "WORKFLOW", "Translator"]

#: What a span is, as ``classify`` says.
OTHER, TOOL, WORKFLOW, ENGINE = 0, 1, 2, 3

_clock = time.perf_counter

#: Exceptions that pause or steer a workflow rather than fail a tool
#: (llama-index-workflows 2.x raises WaitingForEvent from a tool waiting for
#: a human; the tool runs again once the event arrives).
_CONTROL_FLOW = frozenset({"WaitingForEvent"})

#: Results of a run's top span that are streams whose LLM call has not
#: started yet (see ``_await_stream``).
_LATE_STREAMS = frozenset({"StreamingAgentChatResponse"})
#: A query engine's streamed answers (``streaming=True``), read later.
_QUERY_STREAMS = frozenset({"StreamingResponse", "AsyncStreamingResponse"})


class _RunState:
    """A Dunetrace run as seen from one top-level span."""

    __slots__ = ("born", "late_stream", "open_llm", "own", "pending", "root", "run", "spans")

    def __init__(self, run: Run, own: bool, root: str) -> None:
        self.run = run
        self.own = own  # we started it, so we finish it
        self.root = root
        self.spans: set[str] = set()
        self.open_llm = 0
        self.pending = False  # the root span exited; a stream is still open
        self.late_stream = False  # the root returned a stream not started yet
        self.born = time.monotonic()


class _Span:
    __slots__ = ("parent", "started", "state", "step", "tool")

    def __init__(self, parent: str | None, state: _RunState) -> None:
        self.parent = parent
        self.state = state
        self.tool: str | None = None
        self.step = 0
        self.started = 0.0


class _Call:
    """An LLM call or a retrieval in flight."""

    __slots__ = ("model_call", "name", "started", "state", "step")

    def __init__(self, state: _RunState, step: int, name: str = "") -> None:
        self.state = state
        #: An LLM call's mark: wrapped OpenAI/Anthropic clients stay silent
        #: in its context (dunetrace.model_calls).
        self.model_call: FrameworkModelCall | None = None
        self.step = step
        self.started = _clock()
        self.name = name


class Translator:
    """Shared by every thread and task LlamaIndex runs in; keeps runs apart
    by span id. Methods do not raise on odd input; the adapter still guards
    them."""

    #: Bounds on what is held at once; the oldest is dropped beyond them.
    max_spans = 50_000
    max_runs = 5_000
    max_calls = 10_000
    #: A run whose top span never ended (an unawaited handler, a workflow
    #: stuck waiting) is finished as ``abandoned`` after this many seconds.
    run_ttl = 6 * 3600.0

    def __init__(self, client: Dunetrace, agent_id: str, classify: Callable[[Any, str], int]) -> None:
        self.client = client
        self.agent_id = agent_id
        self._classify = classify
        self._lock = threading.Lock()
        self._spans: dict[str, _Span] = {}
        self._runs: dict[str, _RunState] = {}  # by root span id, oldest first
        self._llm: dict[str, _Call] = {}
        self._retrievals: dict[str, _Call] = {}
        # One small method per event class, looked up by class name.
        self._on_event: dict[str, Callable[[Any, str], None]] = {
            "LLMChatStartEvent": self._llm_start,
            "LLMCompletionStartEvent": self._llm_start,
            "LLMChatEndEvent": self._llm_end,
            "LLMCompletionEndEvent": self._llm_end,
            "ExceptionEvent": self._llm_error,
            "RetrievalStartEvent": self._retrieval_start,
            "RetrievalEndEvent": self._retrieval_end,
        }

    # -- spans ----------------------------------------------------------------

    def run_of_span(self, span_id: Any) -> Run | None:
        """The run a live span belongs to (the policy callback's question)."""
        span = self._spans.get(span_id) if isinstance(span_id, str) else None
        return span.state.run if span is not None else None

    def span_entered(self, span_id: Any, parent_id: Any, instance: Any, bound_args: Any) -> None:
        if not isinstance(span_id, str):
            warn_once(
                "llamaindex-span-id", "dunetrace: LlamaIndex gave a span id that is not a string (%r); ignored", span_id
            )
            return
        parent = self._spans.get(parent_id) if isinstance(parent_id, str) else None
        kind = OTHER if instance is None else self._classify(instance, readers.method_of(span_id)[1])
        if parent is not None:
            state = parent.state
            if kind == WORKFLOW:  # an agent run inside a run: a child run
                state = self._open_run(span_id, instance, bound_args, state.run)
        elif kind == WORKFLOW or kind == ENGINE:
            user_run = get_current_run()
            if user_run is not None and not user_run.finished:
                state = self._track(_RunState(user_run, False, span_id))
            else:
                state = self._open_run(span_id, instance, bound_args, None)
        else:
            user_run = get_current_run()
            if user_run is None or user_run.finished:
                return  # work outside any run (index building, a bare call)
            state = self._track(_RunState(user_run, False, span_id))
        span = _Span(parent_id if parent is not None else None, state)
        if kind == TOOL:
            self._tool_start(span, instance, bound_args)
        with self._lock:
            self._spans[span_id] = span
            state.spans.add(span_id)
            if len(self._spans) > self.max_spans:
                self._evict_span()

    def span_exited(self, span_id: Any, result: Any) -> None:
        span = self._pop_span(span_id)
        if span is None:
            return
        if span.tool is not None:
            success, output, error = readers.tool_result(result)
            self._tool_end(span, success, output, error)
        state = span.state
        if state.root == span_id:
            if type(result).__name__ in _LATE_STREAMS:
                self._await_stream(span_id, span)
            elif not (state.own and type(result).__name__ in _QUERY_STREAMS and self._relay_stream(state, result)):
                self._close(state, None)
        elif state.late_stream and len(state.spans) <= 1:
            self._close(state, None)  # the stream was written out

    def span_dropped(self, span_id: Any, error: Any) -> None:
        span = self._pop_span(span_id)
        if span is None:
            return
        if span.tool is not None and type(error).__name__ not in _CONTROL_FLOW:
            self._tool_end(span, False, None, error if isinstance(error, BaseException) else None)
        # A non-streamed LLM call that raises ends without an end event.
        call = self._take(self._llm, span_id)
        if call is not None:
            self._llm_done(call, None, "error")
        call = self._take(self._retrievals, span_id)
        if call is not None:
            self._retrieval_done(call, None)
        if span.state.root == span_id or (span.state.late_stream and len(span.state.spans) <= 1):
            if not isinstance(error, BaseException):
                error = RuntimeError("LlamaIndex dropped the run's span without an exception")
            self._close(span.state, error)

    def _pop_span(self, span_id: Any) -> _Span | None:
        if not isinstance(span_id, str) or span_id not in self._spans:
            return None  # most spans are outside any run: no lock for them
        with self._lock:
            span = self._spans.pop(span_id, None)
            if span is not None:
                span.state.spans.discard(span_id)
        return span

    # -- runs -----------------------------------------------------------------

    def _open_run(self, span_id: str, instance: Any, bound_args: Any, parent: Run | None) -> _RunState:
        system_prompt = getattr(instance, "system_prompt", None)
        if parent is None:
            agent_id = self.agent_id
        else:
            agent_id = f"{parent.agent_id}/{readers.agent_name(instance)}"
        run = self.client.run(
            agent_id,
            user_input=readers.user_input(bound_args),
            system_prompt=system_prompt if isinstance(system_prompt, str) else None,
            model=readers.agent_model(instance),
            tools=readers.agent_tools(instance),
            parent_run_id=parent.run_id if parent is not None else None,
        )
        run.start()
        return self._track(_RunState(run, True, span_id))

    def _track(self, state: _RunState) -> _RunState:
        expired: list[_RunState] = []
        with self._lock:
            self._runs[state.root] = state
            deadline = time.monotonic() - self.run_ttl
            while self._runs:
                oldest = next(iter(self._runs.values()))
                if oldest is state or (len(self._runs) <= self.max_runs and oldest.born > deadline):
                    break
                expired.append(self._runs.pop(oldest.root))
        for old in expired:
            warn_once(
                "llamaindex-abandoned",
                "dunetrace: a LlamaIndex run never ended (or too many were open); finished as 'abandoned'",
            )
            self._finish(old, None, "abandoned")
        return state

    def _await_stream(self, span_id: str, span: _Span) -> None:
        # A chat engine's stream_chat returns before the LLM is called; the
        # span that writes the stream out (StreamingAgentChatResponse.
        # write_response_to_history, llama-index-core 0.14) starts when the
        # caller reads it, as a child of the span that already exited. Keep
        # that span known until then; the run ends when the writer does.
        with self._lock:
            self._spans[span_id] = span
            span.state.spans.add(span_id)
            span.state.late_stream = True

    def _relay_stream(self, state: _RunState, response: Any) -> bool:
        """A streaming query engine's answer: llama-index-core 0.14 calls the
        LLM only when the caller reads ``response_gen``, in spans linked to
        nothing. Read it through a relay that makes the run current around
        each read (those spans then join it, as inside a caller's own
        ``dt.run``) and ends the run with the stream. False when there is
        no generator to relay."""
        tokens = getattr(response, "response_gen", None)
        relayed = relay_tokens(tokens, state.run, lambda error: self._close(state, error))
        if relayed is None:
            return False
        response.response_gen = relayed
        return True

    def _close(self, state: _RunState, error: BaseException | None) -> None:
        """The run's top span ended."""
        with self._lock:
            for span_id in state.spans:
                self._spans.pop(span_id, None)
            state.spans.clear()
            if error is None and state.open_llm > 0:
                state.pending = True  # a stream outlives the span; finish at its end
                return
            self._runs.pop(state.root, None)
        self._finish(state, error, "final_answer")

    def _finish(self, state: _RunState, error: BaseException | None, exit_reason: str) -> None:
        with self._lock:
            for span_id in state.spans:  # left over when the run is abandoned
                self._spans.pop(span_id, None)
            state.spans.clear()
            dropped = [key for key, call in self._llm.items() if call.state is state]
            for key in dropped:
                del self._llm[key]
            for key in [key for key, call in self._retrievals.items() if call.state is state]:
                del self._retrievals[key]
            state.open_llm = 0
            run = state.run
        if state.own:
            run.finish(error=error, exit_reason=exit_reason)

    def close(self) -> None:
        """Detaching: finish the runs still open as ``abandoned``."""
        with self._lock:
            states = list(self._runs.values())
            self._runs.clear()
            self._spans.clear()
        for state in states:
            self._finish(state, None, "abandoned")

    def _evict_span(self) -> None:
        # Called under the lock. A span that never exited (a dropped task)
        # must not hold memory forever. The oldest goes, unless it is a run's
        # top span: without it the run could not end (runs have their own bound).
        for span_id, span in self._spans.items():
            if span.state.root != span_id:
                break
        else:
            return
        del self._spans[span_id]
        span.state.spans.discard(span_id)
        warn_once(
            "llamaindex-span-bound",
            "dunetrace: over %d LlamaIndex spans open; the oldest are forgotten",
            self.max_spans,
        )

    # -- tools ----------------------------------------------------------------

    def _tool_start(self, span: _Span, instance: Any, bound_args: Any) -> None:
        run = span.state.run
        if run.finished or run._violation is not None:  # stopped: the next LLM call raises
            return
        name = readers.tool_name(instance)
        # __call__ -> call, or an async adapter around a sync tool: one call.
        parent = self._spans.get(span.parent) if span.parent is not None else None
        for _ in range(64):
            if parent is None or parent.state is not span.state:
                break
            if parent.tool == name:
                return
            parent = self._spans.get(parent.parent) if parent.parent is not None else None
        span.tool = name
        span.step = run.tool_called(name, readers.tool_args(bound_args))
        span.started = _clock()

    def _tool_end(self, span: _Span, success: bool, output: Any, error: Any) -> None:
        run = span.state.run
        if run.finished or span.tool is None:
            return
        run.tool_responded(
            span.tool,
            success,
            latency_ms=(_clock() - span.started) * 1000,
            error=error,
            output=output,
            step=span.step,
        )

    # -- events ---------------------------------------------------------------

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

    def _inside(self, span: _Span, calls: dict[str, _Call]) -> bool:
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

    def _start(self, span_id: str, calls: dict[str, _Call]) -> _Span | None:
        span = self._spans.get(span_id)
        if span is None or span.state.run.finished or self._inside(span, calls):
            return None
        return span

    def _remember(self, calls: dict[str, _Call], span_id: str, call: _Call) -> None:
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

    def _take(self, calls: dict[str, _Call], span_id: str) -> _Call | None:
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
        call = _Call(span.state, step)
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
            self._llm_done(call, None, "error")

    def _llm_done(self, call: _Call, response: Any, reason: str | None) -> None:
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
            )
        if state.pending and state.open_llm <= 0:
            with self._lock:
                if self._runs.pop(state.root, None) is None:
                    return  # finished meanwhile by another thread
            self._finish(state, None, "final_answer")

    def _retrieval_start(self, event: Any, span_id: str) -> None:
        span = self._start(span_id, self._retrievals)
        if span is None:
            return
        name = readers.index_name(span_id)
        query = readers.text_of(getattr(event, "str_or_query_bundle", None))
        step = span.state.run.retrieval_called(name, query)
        self._remember(self._retrievals, span_id, _Call(span.state, step, name))

    def _retrieval_end(self, event: Any, span_id: str) -> None:
        call = self._take(self._retrievals, span_id)
        if call is not None:
            self._retrieval_done(call, getattr(event, "nodes", None))

    def _retrieval_done(self, call: _Call, nodes: Any) -> None:
        run = call.state.run
        if run.finished:
            return
        count, top = readers.retrieval_scores(nodes)
        run.retrieval_responded(call.name, count, top, (_clock() - call.started) * 1000, step=call.step)  # type: ignore[arg-type]
