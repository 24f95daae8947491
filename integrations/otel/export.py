"""Every Dunetrace run also as OpenTelemetry spans, through the user's
``TracerProvider``, in the GenAI semantic conventions.

``export_to(dt, provider)`` adds a watcher to the client (see
:mod:`dunetrace.live`): it is fed each event on the thread that emitted it,
in order, already reduced to what Dunetrace sends (hashes, never content).
There it only queues the event (and, for a run's start, the OpenTelemetry
context current there); the client's drain thread turns what is queued into
spans at each wake, so the agent's thread never pays for building spans:

* ``run.started`` opens an ``invoke_agent <agent_id>`` span (a child run's
  span is a child of its parent run's span, in the same trace; a root run's
  span is a child of whatever span is current where it started). This one
  span is made on the agent's thread, once per run, so that its ids are
  known at once: the run sends them as an ``external.signal`` named
  ``OTEL_SPAN`` (``trace_id``, ``span_id``, hex), and a collector that
  judges the run later puts its verdict in the same trace (``dunetrace
  serve --otlp-endpoint``: a ``dunetrace.judgement`` span, child of this
  one, since an ended span cannot be changed);
* ``llm.called`` / ``llm.responded`` are a ``chat <model>`` span,
  ``tool.*`` an ``execute_tool <tool>`` span (error status on failure),
  ``retrieval.*`` a ``retrieval <index>`` span;
* ``external.signal`` (live detectors, policies, rate limits) is a span event
  on the run's span, and the names of the run's signals an attribute of it;
* ``run.completed`` / ``run.errored`` end the run's span (error status and
  the exception class name on an error; never its message).

Spans carry the event's own time. Only the payload's fields become
attributes, so nothing leaves the process that Dunetrace would not send.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from dunetrace import Dunetrace
from dunetrace.log import warn_once
from dunetrace.plugins import hookimpl

if TYPE_CHECKING:
    from opentelemetry.trace import Span, TracerProvider

    from dunetrace.run import Run

__all__ = ["SCOPE", "SPAN_SIGNAL", "OtelExport", "export_to"]

#: The instrumentation scope of the spans we make; the span receiver skips
#: spans of this scope, so exporting and receiving on one provider never loops.
SCOPE = "dunetrace"

# Payload keys that become attributes as they are, per event type; the
# others are named below. Hashes keep the payload's own names under dunetrace.*.
_LLM_CALLED = {"model": "gen_ai.request.model", "prompt_tokens": "gen_ai.usage.input_tokens"}
_LLM_RESPONDED = {
    "prompt_tokens": "gen_ai.usage.input_tokens",
    "completion_tokens": "gen_ai.usage.output_tokens",
    "latency_ms": "dunetrace.latency_ms",
    "output_length": "dunetrace.output_length",
    "output_hash": "dunetrace.output_hash",
}
_TOOL_CALLED = {"tool_name": "gen_ai.tool.name", "args_hash": "dunetrace.args_hash"}
_TOOL_RESPONDED = {
    "output_length": "dunetrace.output_length",
    "latency_ms": "dunetrace.latency_ms",
    "error_hash": "dunetrace.error_hash",
    "from_cache": "dunetrace.from_cache",
}
_RETRIEVAL_CALLED = {"index_name": "gen_ai.data_source.id", "query_hash": "dunetrace.query_hash"}
_RETRIEVAL_RESPONDED = {
    "result_count": "dunetrace.result_count",
    "top_score": "dunetrace.top_score",
    "latency_ms": "dunetrace.latency_ms",
}
_SIGNAL_KEYS = ("signal_name", "source", "severity", "confidence", "live", "http_status")
#: The ``external.signal`` that carries a run's root span ids to the collector.
SPAN_SIGNAL = "OTEL_SPAN"


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _set(span: Span, payload: dict[str, Any], names: dict[str, str]) -> None:
    for key, name in names.items():
        value = payload.get(key)
        if isinstance(value, (str, bool, int, float)):
            span.set_attribute(name, value)


class _RunSpans:
    __slots__ = ("context", "signals", "span", "steps")

    def __init__(self, span: Span) -> None:
        self.span = span
        self.context = trace.set_span_in_context(span)
        self.steps: dict[int, Span] = {}
        self.signals: list[str] = []


class OtelExport:
    """The watcher ``export_to`` adds; ``close()`` (or ``dt.shutdown()``)
    ends what is open and stops it. At most ``max_open_runs`` runs are
    followed at once; past that, new runs are counted in ``skipped_runs``."""

    def __init__(self, dt: Dunetrace, provider: TracerProvider, max_open_runs: int = 10_000) -> None:
        from dunetrace import __version__

        self.client = dt
        self.provider = provider
        self.tracer = provider.get_tracer(SCOPE, __version__)
        self.max_open_runs = max_open_runs
        self.skipped_runs = 0
        self._runs: dict[str, _RunSpans] = {}
        self._lock = threading.Lock()
        #: Events seen and not yet made into spans, in the order they happened.
        self._pending: deque[tuple[Run, str, int, int, dict[str, Any], Any]] = deque()
        self._work = threading.Lock()
        self.closed = False

    # -- the watcher ----------------------------------------------------------

    def observe(self, run: Run, event_type: str, step: int, payload: dict[str, Any]) -> None:
        """The watcher: on the agent's thread, queue and go; a run's start
        makes its span here (see the module's docstring)."""
        if self.closed:
            return
        if event_type == "run.started":
            self._started(run, payload, _ns(run.clock()), otel_context.get_current())
            spans = self._runs.get(run.run_id)
            if spans is not None:
                ids = spans.span.get_span_context()
                if ids.is_valid and ids.trace_flags.sampled:
                    run.external_signal(
                        SPAN_SIGNAL, source="otel", trace_id=f"{ids.trace_id:032x}", span_id=f"{ids.span_id:016x}"
                    )
            return
        self._pending.append((run, event_type, step, _ns(run.clock()), payload, None))

    def export_pending(self) -> None:
        """Make the queued events into spans (the drain thread, a flush)."""
        if not self._pending:
            return
        with self._work:  # one at a time, in order
            pending = self._pending
            while pending:
                self._span_of(*pending.popleft())

    @hookimpl
    def dunetrace_drain(self, client: Dunetrace) -> None:
        if client is self.client:
            self.export_pending()

    @hookimpl
    def dunetrace_flush(self, client: Dunetrace, timeout: float) -> None:
        if client is self.client:
            self.export_pending()

    def _span_of(self, run: Run, event_type: str, step: int, at: int, payload: dict[str, Any], where: Any) -> None:
        spans = self._runs.get(run.run_id)
        if spans is None:
            return
        kind, _, phase = event_type.partition(".")
        if phase == "called":
            self._called(spans, kind, step, payload, at)
        elif phase == "responded":
            self._responded(spans, kind, step, payload, at)
        elif event_type == "external.signal":
            if payload.get("signal_name") != SPAN_SIGNAL:
                self._signal(spans, payload, at)
        elif kind == "run":
            self._finished(run, spans, event_type, payload, at)

    def _started(self, run: Run, payload: dict[str, Any], at: int, where: Any) -> None:
        if len(self._runs) >= self.max_open_runs:
            self.skipped_runs += 1
            warn_once(
                "otel-export-full", "dunetrace: more than %d runs open; later runs are not exported", self.max_open_runs
            )
            return
        parent = self._runs.get(run.parent_run_id) if run.parent_run_id else None
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "invoke_agent",
            "gen_ai.agent.name": run.agent_id,
            "gen_ai.agent.id": run.agent_id,
            "dunetrace.run_id": run.run_id,
            "dunetrace.agent_version": run.agent_version,
        }
        if run.parent_run_id:
            attributes["dunetrace.parent_run_id"] = run.parent_run_id
        if isinstance(payload.get("model"), str):
            attributes["gen_ai.request.model"] = payload["model"]
        tools = payload.get("tools")
        if isinstance(tools, list) and all(isinstance(t, str) for t in tools):
            attributes["dunetrace.tools"] = tools
        if isinstance(payload.get("input_hash"), str):
            attributes["dunetrace.input_hash"] = payload["input_hash"]
        span = self.tracer.start_span(
            f"invoke_agent {run.agent_id}",
            context=parent.context if parent is not None else where,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=at,
        )
        spans = _RunSpans(span)
        injection = payload.get("injection_signal")
        if isinstance(injection, dict):
            patterns = injection.get("matched_patterns")
            event: dict[str, Any] = {"signal_name": "PROMPT_INJECTION_SIGNAL", "source": "dunetrace"}
            if isinstance(patterns, list):
                event["matched_patterns"] = [p for p in patterns if isinstance(p, str)]
            span.add_event("dunetrace.signal", event, timestamp=at)
            spans.signals.append("PROMPT_INJECTION_SIGNAL")
        with self._lock:
            self._runs[run.run_id] = spans

    def _called(self, spans: _RunSpans, kind: str, step: int, payload: dict[str, Any], at: int) -> None:
        if kind == "llm":
            model = payload.get("model")
            name, operation, names = (f"chat {model}" if model else "chat"), "chat", _LLM_CALLED
            span_kind = SpanKind.CLIENT
        elif kind == "tool":
            name, operation, names = f"execute_tool {payload.get('tool_name')}", "execute_tool", _TOOL_CALLED
            span_kind = SpanKind.INTERNAL
        elif kind == "retrieval":
            name, operation, names = f"retrieval {payload.get('index_name')}", "retrieval", _RETRIEVAL_CALLED
            span_kind = SpanKind.CLIENT
        else:
            return
        span = self.tracer.start_span(
            name, context=spans.context, kind=span_kind, attributes={"gen_ai.operation.name": operation}, start_time=at
        )
        _set(span, payload, names)
        previous = spans.steps.pop(step, None)
        if previous is not None:  # a step reported twice: the first one is over
            previous.end(end_time=at)
        spans.steps[step] = span

    def _responded(self, spans: _RunSpans, kind: str, step: int, payload: dict[str, Any], at: int) -> None:
        span = spans.steps.pop(step, None)
        if span is None:
            return
        if kind == "llm":
            _set(span, payload, _LLM_RESPONDED)
            reason = payload.get("finish_reason")
            if isinstance(reason, str):
                span.set_attribute("gen_ai.response.finish_reasons", (reason,))
                if reason == "error":
                    span.set_status(Status(StatusCode.ERROR))
        elif kind == "tool":
            _set(span, payload, _TOOL_RESPONDED)
            if payload.get("success") is False:
                span.set_status(Status(StatusCode.ERROR))
        else:
            _set(span, payload, _RETRIEVAL_RESPONDED)
        span.end(end_time=at)

    def _signal(self, spans: _RunSpans, payload: dict[str, Any], at: int) -> None:
        event = {key: payload[key] for key in _SIGNAL_KEYS if isinstance(payload.get(key), (str, bool, int, float))}
        spans.span.add_event("dunetrace.signal", event, timestamp=at)
        name = payload.get("signal_name")
        if isinstance(name, str) and name not in spans.signals:
            spans.signals.append(name)

    def _finished(self, run: Run, spans: _RunSpans, event_type: str, payload: dict[str, Any], at: int) -> None:
        with self._lock:
            self._runs.pop(run.run_id, None)
        for step_span in spans.steps.values():  # steps that never answered
            step_span.set_attribute("dunetrace.unfinished", True)
            step_span.end(end_time=at)
        spans.steps.clear()
        span = spans.span
        if isinstance(payload.get("total_steps"), int):
            span.set_attribute("dunetrace.total_steps", payload["total_steps"])
        if spans.signals:
            span.set_attribute("dunetrace.signals", spans.signals)
        if event_type == "run.errored":
            error_type = payload.get("error_type")
            if isinstance(error_type, str):
                span.set_attribute("error.type", error_type)
            if isinstance(payload.get("error_hash"), str):
                span.set_attribute("dunetrace.error_hash", payload["error_hash"])
            span.set_status(Status(StatusCode.ERROR, error_type if isinstance(error_type, str) else None))
        elif isinstance(payload.get("exit_reason"), str):
            span.set_attribute("dunetrace.exit_reason", payload["exit_reason"])
        span.end(end_time=at)

    # -- lifetime -------------------------------------------------------------

    def close(self) -> None:
        """Stop exporting; spans of runs still open end now, marked
        ``dunetrace.unfinished``."""
        if self.closed:
            return
        self.closed = True
        self.client.remove_watcher(self)
        self.export_pending()
        with self._lock:
            runs, self._runs = list(self._runs.values()), {}
        for spans in runs:
            for step_span in spans.steps.values():
                step_span.set_attribute("dunetrace.unfinished", True)
                step_span.end()
            spans.span.set_attribute("dunetrace.unfinished", True)
            spans.span.end()
        if self.client.plugins.is_registered(self):
            self.client.plugins.unregister(self)

    @hookimpl
    def dunetrace_shutdown(self, client: Dunetrace) -> None:
        if client is self.client:
            self.close()


def export_to(dt: Dunetrace, tracer_provider: TracerProvider | None = None) -> OtelExport:
    """Send every run of ``dt`` also as spans through ``tracer_provider``
    (default: the global one). Returns the exporter; ``close()`` it, or
    ``dt.shutdown()``, to stop. Idempotent: the same client and provider
    return the exporter already there. ``Dunetrace(export="none")`` turns
    off the shipping to a Dunetrace ingest while this goes on."""
    if not isinstance(dt, Dunetrace):
        raise TypeError(f"export_to(dt, provider) needs a Dunetrace client first; got {dt!r}")
    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    if not hasattr(provider, "get_tracer"):
        raise TypeError(f"export_to(dt, provider): provider must be an OpenTelemetry TracerProvider; got {provider!r}")
    name = f"dunetrace.otel.export:{id(provider)}"
    current = dt.plugins.get_plugin(name)
    if isinstance(current, OtelExport) and current.provider is provider and not current.closed:
        return current
    exporter = OtelExport(dt, provider)
    dt.plugins.register(exporter, name=name)
    dt.add_watcher(exporter)
    return exporter
