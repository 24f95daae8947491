"""``DunetraceTracingProcessor``: the OpenAI Agents SDK's tracing
processor interface, feeding the span translator of
``dunetrace.integrations.otel`` with the SDK's own traces and spans.

* Each ``Runner.run`` / ``run_sync`` / ``run_streamed`` (the SDK's task
  span; the trace, where task spans are turned off) is a run, named
  ``agent_id`` or its first agent's name, whose first agent span describes
  it (name, tools). Several runs inside one ``trace()`` block stay apart.
* A later agent span in the run (after a handoff), or a run started inside
  a tool, is a child run ``<agent_id>.<agent name>``.
* Generation and response spans are model calls (model, tokens, finish
  reason), function spans tool calls (arguments hashed, success).
* A tripped guardrail ends the run with exit reason ``guardrail_tripped``.

The SDK calls processors on the agent's own thread or task, and swallows
what they raise, so a live policy cannot stop the agent by raising here:
the runner ``instrument()`` installs applies it (see :mod:`.runner`).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from agents.tracing.processor_interface import TracingProcessor

from dunetrace import log
from dunetrace.integrations.otel.translator import SpanTranslator
from dunetrace.log import warn_once

from .translator import agent_attributes, attributes_of, error_of, nanos

if TYPE_CHECKING:
    from dunetrace import Dunetrace

__all__ = ["DunetraceTracingProcessor"]

GUARDRAIL_TRIPPED = "guardrail_tripped"
_STEPS = frozenset({"generation", "response", "function"})


class DunetraceTracingProcessor(TracingProcessor):
    """Reports OpenAI Agents SDK runs to Dunetrace::

        agents.add_trace_processor(DunetraceTracingProcessor(dt, agent_id="support-bot"))

    (``dunetrace.integrations.openai_agents.instrument`` does that)."""

    def __init__(self, dt: Dunetrace, agent_id: str | None = None, *, max_open_spans: int = 100_000) -> None:
        if not hasattr(dt, "run") or not hasattr(dt, "plugins"):
            raise TypeError(f"DunetraceTracingProcessor needs a Dunetrace client first; got {dt!r}")
        if agent_id is not None and (not isinstance(agent_id, str) or not agent_id.strip()):
            raise ValueError(f"agent_id must be a non-empty string naming the agent, or None; got {agent_id!r}")
        self.client = dt
        self.agent_id = agent_id
        # The translator is handed each span's error as the span itself. The
        # SDK drops what a processor raises, so a stopped run's calls are
        # refused by the policy runner's hooks, not here.
        self.translator = SpanTranslator(dt, agent_id, lambda error: error, max_open_spans, stops_at_span_start=False)
        #: Runs by the id of the span (a task span, or a trace without task
        #: spans) they are kept under -> [start ns, described yet, error].
        self._runs: dict[str, list[Any]] = {}
        #: Per trace, the agents whose runs are still to be described: (the
        #: key of the run, the agent's span data).
        self._undescribed: dict[str, list[tuple[str, Any]]] = {}
        #: Traces by id -> their start (ns): a trace is a run only when the
        #: SDK makes no task spans (``RunConfig(tracing=...)`` can turn them off).
        self._traces: dict[str, int] = {}
        self._lock = threading.Lock()
        self.malformed = 0
        #: Ids of the runs the policy hooks refused a call of: their task or
        #: agent span's error (which the SDK records by message only) is that
        #: PolicyViolation.
        self.refused: set[str] = set()

    # -- traces ------------------------------------------------------------------

    def on_trace_start(self, trace: Any) -> None:
        try:
            with self._lock:
                self._traces[trace.trace_id] = time.time_ns()
        except Exception as exc:
            self._failed(exc, "on_trace_start")

    def on_trace_end(self, trace: Any) -> None:
        try:
            trace_id = trace.trace_id
            with self._lock:
                self._traces.pop(trace_id, None)
                self._undescribed.pop(trace_id, None)
            if trace_id in self._runs:  # the trace was the run
                self._end_run(trace_id, None, time.time_ns())
        except Exception as exc:
            self._failed(exc, "on_trace_end")

    # -- runs ----------------------------------------------------------------------

    def _start_run(self, key: str, parent: str | None, start: int) -> None:
        with self._lock:
            self._runs[key] = [start, False, None]
        self.translator.start(key, parent, "invoke_agent", {"gen_ai.operation.name": "invoke_agent"}, start)

    def _end_run(self, key: str, parent: str | None, end: int) -> None:
        with self._lock:
            state = self._runs.pop(key, None)
        if state is None:
            return
        if state[2] is None:  # ended without an error: the agent gave its final output
            self.translator.stop_reason(key, "final_answer", replace=False)
        elif self.refused:
            run = self.translator.run_of(key)
            if run is not None and run.run_id in self.refused:
                self.refused.discard(run.run_id)
                state[2] = ("PolicyViolation", state[2][1])
        attributes = {"gen_ai.operation.name": "invoke_agent"}
        self.translator.end(key, parent, "invoke_agent", attributes, state[0], end, state[2])

    # -- spans -------------------------------------------------------------------

    def on_span_start(self, span: Any) -> None:
        try:
            data = span.span_data
            kind = getattr(data, "type", None)
            parent = span.parent_id
            start = nanos(span.started_at) or time.time_ns()
            if kind == "task":  # one Runner.run: a run, a child run inside a tool
                self._start_run(span.span_id, parent, start)
                return
            if kind == "agent":
                self._agent_started(span, data, parent, start)
                return
            if kind in _STEPS and span.trace_id in self._undescribed:
                self._describe(span.trace_id)
            self.translator.start(span.span_id, parent or span.trace_id, _name(data), attributes_of(data, False), start)
        except Exception as exc:
            self._failed(exc, "on_span_start")

    def _agent_started(self, span: Any, data: Any, parent: str | None, start: int) -> None:
        if parent is None:  # no task spans: the trace is the run
            if span.trace_id not in self._runs:
                self._start_run(span.trace_id, None, self._traces.get(span.trace_id) or start)
            parent = span.trace_id
        run = self._runs.get(parent)
        if run is not None and not run[1]:
            # The run's first agent: it describes the run; its steps are the run's.
            run[1] = True
            described = parent
            self.translator.start(span.span_id, parent, "agent", {}, start)
        else:
            # A handoff's agent, or one run inside a tool: a child run.
            described = span.span_id
            self.translator.start(span.span_id, parent, "agent", agent_attributes(data, as_run=True), start)
        with self._lock:
            self._undescribed.setdefault(span.trace_id, []).append((described, data))

    def _describe(self, trace_id: str) -> None:
        """Tell the translator the tools of the agents started so far: the
        SDK fills them in after the agent span and its first turn start (0.20)."""
        with self._lock:
            agents = self._undescribed.pop(trace_id, ())
        for described, agent in agents:
            self.translator.describe(described, agent_attributes(agent, as_run=False))

    def on_span_end(self, span: Any) -> None:
        try:
            data = span.span_data
            kind = getattr(data, "type", None)
            parent = span.parent_id
            start = nanos(span.started_at) or time.time_ns()
            end = nanos(span.ended_at) or time.time_ns()
            error = error_of(span)
            if kind == "task":
                run = self._runs.get(span.span_id)
                if run is not None and error is not None:
                    run[2] = error
                self._end_run(span.span_id, parent, end)
                return
            if kind == "guardrail" and getattr(data, "triggered", False):
                self.translator.stop_reason(span.span_id, GUARDRAIL_TRIPPED)
            if error is not None and kind == "agent":
                error = self._refused_error(span.span_id, parent, error)
                # The run this agent span is in failed (its task span may not say).
                for key in (parent, span.trace_id):
                    run = self._runs.get(key) if key else None
                    if run is not None:
                        run[2] = error
                        break
            attributes = {} if kind == "agent" else attributes_of(data, ended=True)
            self.translator.end(span.span_id, parent or span.trace_id, _name(data), attributes, start, end, error)
        except Exception as exc:
            self._failed(exc, "on_span_end")

    def _refused_error(self, key: str, parent: str | None, error: tuple[str, str]) -> tuple[str, str]:
        """A handoff's agent span that failed because the policy runner
        refused a call of its run (or of its parent's): PolicyViolation."""
        if not self.refused:
            return error
        run = self.translator.run_of(key)
        if run is None or run.run_id not in self.refused:
            return error
        if parent is None or self.translator.run_of(parent) is not run:
            self.refused.discard(run.run_id)  # a child run: ends here
        return ("PolicyViolation", error[1])

    def shutdown(self) -> None:
        try:
            self.refused.clear()
            self.translator.close()
        except Exception as exc:
            self._failed(exc, "shutdown")

    def force_flush(self) -> None:
        try:
            self.client.flush(5.0)
        except Exception as exc:
            self._failed(exc, "force_flush")

    def stats(self) -> dict[str, int]:
        return {**self.translator.counts, "open_runs": self.translator.open_runs, "unreadable": self.malformed}

    def _failed(self, exc: Exception, where: str) -> None:
        if getattr(exc, "dunetrace_passthrough", False) or log.strict:
            raise exc
        self.malformed += 1
        warn_once(
            f"openai-agents:{where}:{type(exc).__name__}",
            "dunetrace: an OpenAI Agents span could not be read in %s and was skipped: %r",
            where,
            exc,
        )


def _name(data: Any) -> str:
    name = getattr(data, "name", None)
    return name if isinstance(name, str) and name else str(getattr(data, "type", "span"))
