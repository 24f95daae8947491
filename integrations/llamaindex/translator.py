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

import contextlib
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dunetrace.exit_reasons import ABANDONED, CANCELLED, FINAL_ANSWER, INTERRUPTED, MAX_ITERATIONS
from dunetrace.log import warn_once
from dunetrace.open_runs import OpenRuns
from dunetrace.run import agent_version, get_current_run, reset_current_run, set_current_run

from . import readers
from .events import EventTranslator
from .pauses import PausedRuns
from .state import CallState, RunState, SpanState, clock
from .streams import relay_tokens

if TYPE_CHECKING:
    from dunetrace import Dunetrace, Run

__all__ = ["ENGINE", "OTHER", "TOOL", "WORKFLOW", "Translator"]

#: What a span is, as ``classify`` says.
OTHER, TOOL, WORKFLOW, ENGINE = 0, 1, 2, 3

_clock = clock

#: Exceptions that pause or steer a workflow rather than fail a tool
#: (llama-index-workflows 2.x raises WaitingForEvent from a tool waiting for
#: a human; the tool runs again once the event arrives).
_CONTROL_FLOW = frozenset({"WaitingForEvent"})
#: Exceptions that stop a run from outside: ``task.cancel()``, an asyncio
#: timeout (the task sees CancelledError), Ctrl-C.
_CANCELLATIONS = frozenset({"CancelledError", "KeyboardInterrupt"})

#: Results of a run's top span that are streams whose LLM call has not
#: started yet (see ``_await_stream``).
_LATE_STREAMS = frozenset({"StreamingAgentChatResponse"})
#: A query engine's streamed answers (``streaming=True``), read later.
_QUERY_STREAMS = frozenset({"StreamingResponse", "AsyncStreamingResponse"})


class Translator(EventTranslator):
    """Shared by every thread and task LlamaIndex runs in; keeps runs apart
    by span id. Methods do not raise on odd input; the adapter still guards
    them."""

    #: Bounds on what is held at once; the oldest is dropped beyond them.
    max_spans = 50_000
    max_calls = 10_000
    #: Default bounds of the open-runs table: how many runs at once, and how
    #: long a run whose top span never ended (an unawaited handler, a
    #: workflow stuck waiting) stays open before it is finished as
    #: ``abandoned``. ``translator.max_runs`` / ``run_ttl`` change them.
    MAX_RUNS = 5_000
    RUN_TTL = 6 * 3600.0

    def __init__(self, client: Dunetrace, agent_id: str, classify: Callable[[Any, str], int]) -> None:
        self.client = client
        self.agent_id = agent_id
        self._classify = classify
        self._lock = threading.Lock()
        self._spans: dict[str, SpanState] = {}
        # By root span id, oldest first: the one bounded table of open runs.
        self._runs: OpenRuns[str, RunState] = OpenRuns(self.MAX_RUNS, max_age=self.RUN_TTL)
        self._llm: dict[str, CallState] = {}
        self._retrievals: dict[str, CallState] = {}
        self._embeddings: dict[str, CallState] = {}
        self._paused = PausedRuns()
        # One small method per event class, looked up by class name.
        self._on_event: dict[str, Callable[[Any, str], None]] = {
            "LLMChatStartEvent": self._llm_start,
            "LLMCompletionStartEvent": self._llm_start,
            "LLMChatEndEvent": self._llm_end,
            "LLMCompletionEndEvent": self._llm_end,
            "ExceptionEvent": self._llm_error,
            "RetrievalStartEvent": self._retrieval_start,
            "RetrievalEndEvent": self._retrieval_end,
            "EmbeddingStartEvent": self._embedding_start,
            "EmbeddingEndEvent": self._embedding_end,
            "SpanCancelledEvent": self._span_cancelled,
        }

    @property
    def max_runs(self) -> int:
        return self._runs.max_runs

    @max_runs.setter
    def max_runs(self, value: int) -> None:
        self._runs.max_runs = value

    @property
    def run_ttl(self) -> float | None:
        return self._runs.max_age

    @run_ttl.setter
    def run_ttl(self, value: float | None) -> None:
        self._runs.max_age = value

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
        elif kind in (WORKFLOW, ENGINE):
            user_run = get_current_run()
            if user_run is not None and not user_run.finished:
                state = self._track(RunState(user_run, False, span_id))
            else:
                state = self._open_run(span_id, instance, bound_args, None)
        else:
            user_run = get_current_run()
            if user_run is None or user_run.finished:
                return  # work outside any run (index building, a bare call)
            state = self._track(RunState(user_run, False, span_id))
        span = SpanState(parent_id if parent is not None else None, state)
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
        if span.state.token is not None and span.state.root == span_id:
            self._not_current(span.state)
        if span.tool is not None:
            success, output, error = readers.tool_result(result)
            self._tool_end(span, success, output, error)
        elif not span.called_tool and result is not None:
            self._unknown_tool(span, result)
        state = span.state
        if state.root == span_id:
            if state.cancelled:
                # handler.cancel_run() (workflows 2.x) exits the run span
                # with no result. With no step cut short and none still
                # running (a sync step's thread), the workflow was idle,
                # waiting for an event from outside: a human.
                self._close(state, None, CANCELLED if state.cut or state.spans else INTERRUPTED)
            elif type(result).__name__ in _LATE_STREAMS:
                self._await_stream(span_id, span)
            elif not (state.own and type(result).__name__ in _QUERY_STREAMS and self._relay_stream(state, result)):
                self._close(state, None)
        elif state.late_stream and len(state.spans) <= 1:
            self._close(state, None)  # the stream was written out

    def span_dropped(self, span_id: Any, error: Any) -> None:
        span = self._pop_span(span_id)
        if span is None:
            return
        if span.state.token is not None and span.state.root == span_id:
            self._not_current(span.state)
        cause = type(error).__name__
        if cause in _CANCELLATIONS:
            span.state.cut = True
        if span.tool is not None and cause in _CONTROL_FLOW:
            # A tool waiting for a human: the call stays open and is the
            # same call when the tool runs again with the answer.
            with self._lock:
                span.state.waiting.setdefault(span.tool, []).append((span.step, span.started))
        elif span.tool is not None:
            self._tool_end(span, False, None, error if isinstance(error, BaseException) else None)
        # A non-streamed LLM call that raises ends without an end event.
        call = self._take(self._llm, span_id)
        if call is not None:
            self._api_error(call, error)  # before the call may end its run
            self._llm_done(call, None, "error")
        call = self._take(self._retrievals, span_id)
        if call is not None:
            self._retrieval_done(call, None)
        if span.state.root == span_id or (span.state.late_stream and len(span.state.spans) <= 1):
            if not isinstance(error, BaseException):
                error = RuntimeError("LlamaIndex dropped the run's span without an exception")
            if cause in _CANCELLATIONS:
                self._close(span.state, None, CANCELLED)
            elif readers.is_iteration_limit(error):
                self._close(span.state, None, MAX_ITERATIONS)
            else:
                self._close(span.state, error)

    @staticmethod
    def _not_current(state: RunState) -> None:
        token, state.token = state.token, None
        # ValueError: exited in another context (a future's callback), which
        # never saw the run.
        with contextlib.suppress(ValueError):
            reset_current_run(token)  # type: ignore[arg-type]

    def _pop_span(self, span_id: Any) -> SpanState | None:
        if not isinstance(span_id, str) or span_id not in self._spans:
            return None  # most spans are outside any run: no lock for them
        with self._lock:
            span = self._spans.pop(span_id, None)
            if span is not None:
                span.state.spans.discard(span_id)
        return span

    # -- runs -----------------------------------------------------------------

    def _open_run(self, span_id: str, instance: Any, bound_args: Any, parent: Run | None) -> RunState:
        agent_id = self.agent_id if parent is None else f"{parent.agent_id}/{readers.agent_name(instance)}"
        configuration = readers.agent_configuration(instance)
        model = readers.agent_model(instance)
        tools = readers.agent_tools(instance)
        # A paused run is resumed by a run of the same workflow class, agent
        # and configuration (the saved context names no run; see pauses.py).
        workflow = f"{agent_id}|{type(instance).__qualname__}|{agent_version(configuration, model, tools)}"
        resumed_from = self._paused.resume(workflow) if readers.resumes_paused_run(bound_args) else None
        run = self.client.run(
            agent_id,
            user_input=readers.user_input(bound_args),
            system_prompt=configuration,
            model=model,
            tools=tools,
            parent_run_id=parent.run_id if parent is not None else None,
            resumed_from=resumed_from,
        )
        run.start()
        state = RunState(run, True, span_id)
        state.workflow = workflow
        if readers.runs_in_own_task(bound_args):
            # Current inside the run: its steps, its tools, your code in them.
            # workflows 2.x enters the run span in the task it made for the
            # run, so the caller never sees it; the span's end resets it.
            state.token = set_current_run(run)
        return self._track(state)

    def _track(self, state: RunState) -> RunState:
        expired = self._runs.add(state.root, state)
        for old in expired:
            warn_once(
                "llamaindex-abandoned",
                "dunetrace: a LlamaIndex run never ended (or too many were open); finished as 'abandoned'",
            )
            self._finish(old, None, ABANDONED)
        return state

    def _await_stream(self, span_id: str, span: SpanState) -> None:
        # A chat engine's stream_chat returns before the LLM is called; the
        # span that writes the stream out (StreamingAgentChatResponse.
        # write_response_to_history, llama-index-core 0.14) starts when the
        # caller reads it, as a child of the span that already exited. Keep
        # that span known until then; the run ends when the writer does.
        with self._lock:
            self._spans[span_id] = span
            span.state.spans.add(span_id)
            span.state.late_stream = True

    def _relay_stream(self, state: RunState, response: Any) -> bool:
        """A streaming query engine's answer: llama-index-core 0.14 calls the
        LLM only when the caller reads ``response_gen``, in spans linked to
        nothing. Read it through a relay that makes the run current around
        each read (those spans then join it, as inside a caller's own
        ``dt.run``) and ends the run with the stream. False when there is
        no generator to relay."""
        tokens = getattr(response, "response_gen", None)
        relayed = relay_tokens(tokens, state.run, lambda error: self._stream_ended(state, error), self._stopping(state))
        if relayed is None:
            return False
        response.response_gen = relayed
        return True

    def _close(self, state: RunState, error: BaseException | None, exit_reason: str | None = None) -> None:
        """The run's top span ended."""
        with self._lock:
            if error is None and exit_reason is None and state.open_llm > 0:
                # A stream outlives the span: finish at its end. Spans still
                # open stay known, so a call in one is answered then.
                state.pending = True
                return
            self._runs.pop(state.root, state)
        self._finish(state, error, exit_reason or FINAL_ANSWER)

    @staticmethod
    def _stopping(state: RunState) -> Callable[[], None]:
        def stop() -> None:
            state.stopped = True

        return stop

    def _stream_ended(self, state: RunState, error: BaseException | None) -> None:
        # A relayed stream read to its end, raised, or closed early by the
        # caller: the run ends now, its LLM call answered as partial when the
        # stream stopped before the LLM's end event.
        with self._lock:
            if self._runs.pop(state.root, state) is None:
                return  # already finished
        if type(error).__name__ in _CANCELLATIONS:
            self._finish(state, None, CANCELLED)
        else:
            self._finish(state, error, FINAL_ANSWER)

    def _finish(self, state: RunState, error: BaseException | None, exit_reason: str) -> None:
        if exit_reason == INTERRUPTED and state.own:
            self._paused.paused(state.workflow, state.run.run_id)
        run = state.run
        with self._lock:
            # A run we own also ends the work joined to it from elsewhere
            # (a relayed stream's LLM call is tracked under its own span).
            related = [state]
            if state.own:
                related += [s for s in self._runs.values() if s.run is run and s is not state]
                for other in related[1:]:
                    self._runs.pop(other.root, other)
            tools: list[SpanState] = []
            waiting: list[tuple[str, tuple[int, float]]] = []
            for each in related:
                tools += [self._spans.pop(span_id) for span_id in each.spans if span_id in self._spans]
                each.spans.clear()
                waiting += [(name, call) for name, calls in each.waiting.items() for call in calls]
                each.waiting.clear()
                each.open_llm = 0
            llm = [self._llm.pop(k) for k in [k for k, call in self._llm.items() if call.state in related]]
            retrievals = [
                self._retrievals.pop(k) for k in [k for k, call in self._retrievals.items() if call.state in related]
            ]
            for key in [k for k, call in self._embeddings.items() if call.state in related]:
                del self._embeddings[key]
        if error is not None:
            exit_reason = "error"  # for the calls left open; the run itself ends errored
        self._answer_left_open(state, exit_reason, tools, waiting, llm, retrievals)
        if state.own:
            run.finish(error=error, exit_reason=None if error is not None else exit_reason)

    def _answer_left_open(
        self,
        state: RunState,
        exit_reason: str,
        spans: list[SpanState],
        waiting: list[tuple[str, tuple[int, float]]],
        llm: list[CallState],
        retrievals: list[CallState],
    ) -> None:
        """Every call still open when its run ends is answered before the
        run's terminal event: as failed when the run was cut (cancelled,
        interrupted, errored), as ``partial`` when a stream stopped early,
        as ``abandoned`` when the run itself was."""
        run = state.run
        reason = ABANDONED if exit_reason == ABANDONED else "partial" if exit_reason == FINAL_ANSWER else "error"
        if state.stopped:
            reason = "partial"  # the reader closed the stream early
        for call in llm:
            self._llm_done(call, None, reason)
        for span in spans:
            if span.tool is not None:
                self._tool_end(span, False, None, None)
        now = _clock()
        for name, (step, started) in waiting:
            if not run.finished:
                run.tool_responded(name, False, latency_ms=(now - started) * 1000, step=step)
        for call in retrievals:
            self._retrieval_done(call, None)

    def close(self) -> None:
        """Detaching: finish the runs still open as ``abandoned``."""
        with self._lock:
            # Work joined to another run first: a run we own ends last.
            states = sorted(self._runs.drain(), key=lambda state: state.own)
        for state in states:
            self._finish(state, None, ABANDONED)
        with self._lock:
            self._spans.clear()

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

    def _tool_start(self, span: SpanState, instance: Any, bound_args: Any) -> None:
        run = span.state.run
        parent = self._spans.get(span.parent) if span.parent is not None else None
        if parent is not None:
            parent.called_tool = True  # a tool ran: the step's result is not a made-up tool
        if run.finished or run._violation is not None:  # stopped: the next LLM call raises
            return
        if self._inside(span, self._llm):
            # A tool run inside a model call is the model's structured output
            # (output_cls / as_structured_llm: llama-index-core 0.14 turns the
            # class into a FunctionTool and calls it), not an agent's tool.
            return
        name = readers.tool_name(instance)
        # __call__ -> call, or an async adapter around a sync tool: one call.
        for _ in range(64):
            if parent is None or parent.state is not span.state:
                break
            if parent.tool == name:
                return
            parent = self._spans.get(parent.parent) if parent.parent is not None else None
        span.tool = name
        with self._lock:
            calls = span.state.waiting.get(name)
            paused = calls.pop(0) if calls else None
        if paused is not None:  # the human answered: the paused call goes on
            span.step, span.started = paused
            return
        span.step = run.tool_called(name, readers.tool_args(bound_args))
        span.started = _clock()

    def _unknown_tool(self, span: SpanState, result: Any) -> None:
        """A tool call no tool ran (a name the model made up): a failed call."""
        found = readers.unknown_tool_call(result)
        run = span.state.run
        if found is None or run.finished or run._violation is not None:
            return
        name, args, error = found
        step = run.tool_called(name, args)
        run.tool_responded(name, False, latency_ms=0.0, error=error, step=step)

    def _tool_end(self, span: SpanState, success: bool, output: Any, error: Any) -> None:
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
