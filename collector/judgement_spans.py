"""The collector's verdict on a run, as an OpenTelemetry span in the run's
own trace (``dunetrace serve --otlp-endpoint URL``).

The SDK's OpenTelemetry export (``dunetrace.integrations.otel.export_to``)
ends a run's ``invoke_agent`` span when the run ends, with the live signals
on it. What the collector finds afterwards (the detectors that compare a run
with the agent's earlier runs, COST_SPIKE and STEP_COUNT_INFLATION, and every
detector when live detection is off) cannot be added to a span already
ended. So the collector sends a span of its own, ``dunetrace.judgement
<agent_id>``: a child of the run's span when the run sent that span's ids
(its ``OTEL_SPAN`` external signal), else a trace of its own; with one
``dunetrace.signal`` span event per signal and the signals' names in
``dunetrace.signals``. Signals already found live are on the run's span,
and are not sent again. Only metadata goes: the same fields the collector
shows.

Sending is OpenTelemetry's own batch processor and OTLP/HTTP exporter,
off the judge's thread; a receiver that is down costs dropped spans (the
exporter's retries, then its log line), never a judgement.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["JudgementSpans", "span_ids"]

logger = logging.getLogger("dunetrace.collector")

#: The ``external.signal`` an exported run sends with its span's ids
#: (``dunetrace.integrations.otel.export.SPAN_SIGNAL``).
SPAN_SIGNAL = "OTEL_SPAN"
_EVIDENCE_TYPES = (str, bool, int, float)


def span_ids(events: Iterable[Mapping[str, Any]]) -> tuple[int, int] | None:
    """The run span's (trace id, span id) from a run's wire events, if the
    run sent them; malformed ids count as none."""
    for event in events:
        payload = event.get("payload")
        if event.get("event_type") != "external.signal" or not isinstance(payload, Mapping):
            continue
        if payload.get("signal_name") != SPAN_SIGNAL:
            continue
        try:
            trace_id, span_id = int(payload["trace_id"], 16), int(payload["span_id"], 16)
        except (KeyError, TypeError, ValueError):
            return None
        if 0 < trace_id < 1 << 128 and 0 < span_id < 1 << 64:
            return trace_id, span_id
        return None
    return None


class JudgementSpans:
    """A tracer provider of the collector's own, exporting to ``endpoint``."""

    def __init__(self, endpoint: str, *, timeout: float = 10.0) -> None:
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            raise ValueError(
                f"--otlp-endpoint must be an http(s) URL such as http://127.0.0.1:4318/v1/traces; got {endpoint!r}"
            )
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor
        except ImportError as exc:
            raise ImportError(
                "--otlp-endpoint needs the OpenTelemetry SDK and its OTLP/HTTP exporter: pip install 'dunetrace[otel]'"
            ) from exc
        from dunetrace._version import __version__

        self.endpoint = endpoint
        self.provider = TracerProvider(resource=Resource.create({"service.name": "dunetrace-collector"}))
        self.provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint, timeout=timeout)))
        self.tracer = self.provider.get_tracer("dunetrace.collector", __version__)
        self.sent = 0

    def send(self, run_id: str, agent_id: str, signals: Iterable[Any], events: Iterable[Mapping[str, Any]]) -> bool:
        """One span for the run's signals not found live; False when there
        are none."""
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

        found = [s for s in signals if not getattr(s, "live", False)]
        if not found:
            return False
        ids = span_ids(events)
        context = None
        if ids is not None:
            parent = SpanContext(ids[0], ids[1], is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
            context = trace.set_span_in_context(NonRecordingSpan(parent))
        now = time.time_ns()
        attributes: dict[str, Any] = {
            "dunetrace.run_id": run_id,
            "gen_ai.agent.name": agent_id,
            "dunetrace.signals": [s.detector for s in found],
        }
        span = self.tracer.start_span(
            f"dunetrace.judgement {agent_id}",
            context=context,
            kind=SpanKind.INTERNAL,
            attributes=attributes,
            start_time=now,
        )
        for signal in found:
            event: dict[str, Any] = {
                "signal_name": signal.detector,
                "source": "dunetrace-collector",
                "severity": signal.severity,
            }
            if signal.step_index is not None:
                event["step_index"] = signal.step_index
            for key, value in (signal.evidence or {}).items():
                if isinstance(value, _EVIDENCE_TYPES):
                    event[f"evidence.{key}"] = value
            span.add_event("dunetrace.signal", event, timestamp=now)
        span.end(end_time=now)
        self.sent += 1
        return True

    def close(self, timeout: float = 5.0) -> None:
        """Send what is queued, then stop."""
        try:
            self.provider.force_flush(int(timeout * 1000))
        finally:
            self.provider.shutdown()
