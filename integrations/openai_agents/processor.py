"""``DunetraceTracingProcessor``: the OpenAI Agents SDK's tracing
processor interface, feeding the span translator of
``dunetrace.integrations.otel`` with the SDK's own traces and spans.

* A trace (one ``Runner.run`` / ``run_sync`` / ``run_streamed``, or a
  ``trace()`` block around several) is a run, named ``agent_id`` or its
  first agent's name; that first agent span describes it (name, tools).
* A later agent span in the trace (after a handoff, or an agent run inside
  a tool) is a child run ``<agent_id>.<agent name>``.
* Generation and response spans are model calls (model, tokens, finish
  reason), function spans tool calls (arguments hashed, success).
* A tripped guardrail ends the run with exit reason ``guardrail_tripped``.

The SDK calls processors on the agent's own thread or task, and swallows
what they raise, so a live policy cannot stop the agent by raising here:
its ``on_signal`` listeners still run.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from agents.tracing.processor_interface import TracingProcessor
from dunetrace import log
from dunetrace.integrations.otel.translator import SpanTranslator
from dunetrace.log import warn_once

from ._spans import agent_attributes, attributes_of, error_of, nanos

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
        # The translator is handed each span's error as the span itself.
        self.translator = SpanTranslator(dt, agent_id, lambda error: error, max_open_spans)
        #: trace id -> [start ns, whether its first agent span was seen, its
        #: error, agent spans whose run is still to be described]
        self._traces: dict[str, list[Any]] = {}
        self._lock = threading.Lock()
        self.malformed = 0

    # -- traces ------------------------------------------------------------------

    def on_trace_start(self, trace: Any) -> None:
        try:
            trace_id = trace.trace_id
            start = time.time_ns()
            with self._lock:
                self._traces[trace_id] = [start, False, None, []]
            self.translator.start(trace_id, None, "invoke_agent", {"gen_ai.operation.name": "invoke_agent"}, start)
        except Exception as exc:
            self._failed(exc, "on_trace_start")

    def on_trace_end(self, trace: Any) -> None:
        try:
            trace_id = trace.trace_id
            with self._lock:
                state = self._traces.pop(trace_id, None)
            if state is None:
                return
            if state[2] is None:  # ended without an error: the agent gave its final output
                self.translator.stop_reason(trace_id, "final_answer", replace=False)
            self.translator.end(
                trace_id,
                None,
                "invoke_agent",
                {"gen_ai.operation.name": "invoke_agent"},
                state[0],
                time.time_ns(),
                state[2],
            )
        except Exception as exc:
            self._failed(exc, "on_trace_end")

    # -- spans -------------------------------------------------------------------

    def on_span_start(self, span: Any) -> None:
        try:
            data = span.span_data
            parent = span.parent_id or span.trace_id
            start = nanos(span.started_at) or time.time_ns()
            trace = self._traces.get(span.trace_id)
            if getattr(data, "type", None) == "agent":
                if trace is not None and not trace[1]:
                    # The trace's first agent: it describes the trace's run.
                    trace[1] = True
                    described = span.trace_id
                    self.translator.start(span.span_id, parent, "agent", {}, start)
                else:
                    described = span.span_id
                    self.translator.start(span.span_id, parent, "agent", agent_attributes(data, as_run=True), start)
                if trace is not None:
                    # The SDK fills in the agent's tools after the span and
                    # its first turn start (0.20): read at its first step.
                    trace[3].append((described, data))
                return
            if trace is not None and trace[3] and getattr(data, "type", None) in _STEPS:
                for described, agent in trace[3]:
                    self.translator.describe(described, agent_attributes(agent, as_run=False))
                trace[3].clear()
            self.translator.start(span.span_id, parent, _name(data), attributes_of(data, ended=False), start)
        except Exception as exc:
            self._failed(exc, "on_span_start")

    def on_span_end(self, span: Any) -> None:
        try:
            data = span.span_data
            kind = getattr(data, "type", None)
            parent = span.parent_id or span.trace_id
            start = nanos(span.started_at) or time.time_ns()
            end = nanos(span.ended_at) or time.time_ns()
            error = error_of(span)
            if kind == "guardrail" and getattr(data, "triggered", False):
                self.translator.stop_reason(span.span_id, GUARDRAIL_TRIPPED)
            if error is not None and kind in ("agent", "custom"):
                trace = self._traces.get(span.trace_id)
                if trace is not None:
                    trace[2] = error
            attributes = {} if kind == "agent" else attributes_of(data, ended=True)
            self.translator.end(span.span_id, parent, _name(data), attributes, start, end, error)
        except Exception as exc:
            self._failed(exc, "on_span_end")

    def shutdown(self) -> None:
        try:
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
