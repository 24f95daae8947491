"""``POST /v1/traces``: OTLP/HTTP spans (protobuf or JSON) into runs, so an
agent in any language can send its GenAI spans straight to the collector.

The spans go through the same translator as ``DunetraceSpanProcessor``
(``dunetrace.integrations.otel.translator``), driven by a Dunetrace client
inside the collector whose only exporter writes into this collector's
store. OTLP sends a span once it has ended, children before parents and
often in separate requests, so the spans of a trace are held until its root
span (one without a parent) arrives, or until the trace has been quiet for
``trace_idle`` seconds (its root lives in another service), and are then
replayed in order: each span started, its children (by start time), then
ended. Content attributes are scanned and hashed on the way, as in the SDK;
the request's content is not kept once its trace is replayed.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import _json

if TYPE_CHECKING:
    from dunetrace import Dunetrace

    from .instance import Collector

__all__ = ["BadTraces", "SpanRecord", "TraceReceiver", "decode_json", "decode_protobuf"]

logger = logging.getLogger("dunetrace.collector")


class BadTraces(Exception):
    """A body that is not an OTLP trace export: 400 (415 for a type we do
    not read)."""

    def __init__(self, detail: str, status: int = 400) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


@dataclass
class SpanRecord:
    """One received span, as the translator reads it."""

    trace_id: bytes
    span_id: int
    parent_id: int | None
    name: str
    attributes: dict[str, Any]
    start_ns: int
    end_ns: int
    #: (exception class name, message) when the span failed, else None.
    error: tuple[str, str] | None = None
    service: str | None = None
    children: list[SpanRecord] = field(default_factory=list)
    #: About how much memory its attributes hold, for the receiver's bound.
    size: int = 0

    def __post_init__(self) -> None:
        self.size = 200 + sum(len(k) + (len(v) if isinstance(v, str) else 16) for k, v in self.attributes.items())


# -- decoding -------------------------------------------------------------------

STATUS_ERROR = 2


def _json_id(value: Any, size: int) -> bytes:
    # OTLP/JSON writes ids as hex; some emitters send base64 as protobuf's
    # JSON mapping would.
    if not isinstance(value, str) or not value:
        return b""
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            return b""
    return raw if len(raw) == size else b""


def _json_value(value: Any, depth: int = 0) -> Any:
    if not isinstance(value, dict) or depth > 8:
        return None
    if "stringValue" in value:
        return value["stringValue"] if isinstance(value["stringValue"], str) else None
    if "boolValue" in value:
        return value["boolValue"] if isinstance(value["boolValue"], bool) else None
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return None
    if "doubleValue" in value:
        number = value["doubleValue"]
        return float(number) if isinstance(number, (int, float)) and not isinstance(number, bool) else None
    if "arrayValue" in value:
        items = (value["arrayValue"] or {}).get("values") if isinstance(value["arrayValue"], dict) else None
        if isinstance(items, list):
            decoded = [_json_value(v, depth + 1) for v in items]
            return tuple(v for v in decoded if isinstance(v, (str, bool, int, float)))
    return None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _json_attributes(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("key"), str):
                value = _json_value(item.get("value"))
                if value is not None:
                    out[item["key"]] = value
    return out


def _nanos(value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return 0
    return number if number > 0 else 0


def _error(status_code: Any, message: Any, events: list[tuple[str, dict[str, Any]]]) -> tuple[str, str] | None:
    if status_code != STATUS_ERROR:
        return None
    for name, attributes in reversed(events):
        if name == "exception":
            kind, text = attributes.get("exception.type"), attributes.get("exception.message")
            return (kind if isinstance(kind, str) else "Error", text if isinstance(text, str) else "")
    return ("Error", message if isinstance(message, str) else "")


def decode_json(body: bytes) -> list[SpanRecord]:
    """Spans of an OTLP/JSON ``ExportTraceServiceRequest``."""
    try:
        data = _json.loads(body)
    except ValueError:
        raise BadTraces("body is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("resourceSpans", []), list):
        raise BadTraces("body must be an OTLP ExportTraceServiceRequest: an object with resourceSpans")
    records: list[SpanRecord] = []
    for resource_spans in _list(data.get("resourceSpans")):
        if not isinstance(resource_spans, dict):
            continue
        resource = resource_spans.get("resource")
        service = _json_attributes(resource.get("attributes") if isinstance(resource, dict) else None).get(
            "service.name"
        )
        for scope_spans in _list(resource_spans.get("scopeSpans")):
            if not isinstance(scope_spans, dict):
                continue
            for span in _list(scope_spans.get("spans")):
                if not isinstance(span, dict):
                    continue
                trace_id, span_id = _json_id(span.get("traceId"), 16), _json_id(span.get("spanId"), 8)
                if not trace_id or not span_id:
                    continue
                parent = _json_id(span.get("parentSpanId"), 8)
                events = [
                    (e.get("name"), _json_attributes(e.get("attributes")))
                    for e in _list(span.get("events"))
                    if isinstance(e, dict) and isinstance(e.get("name"), str)
                ]
                status = span.get("status") if isinstance(span.get("status"), dict) else {}
                records.append(
                    SpanRecord(
                        trace_id,
                        int.from_bytes(span_id, "big"),
                        int.from_bytes(parent, "big") if parent else None,
                        span.get("name") if isinstance(span.get("name"), str) else "",
                        _json_attributes(span.get("attributes")),
                        _nanos(span.get("startTimeUnixNano")),
                        _nanos(span.get("endTimeUnixNano")),
                        _error(status.get("code"), status.get("message"), events),
                        service if isinstance(service, str) else None,
                    )
                )
    return records


def _proto_value(value: Any, depth: int = 0) -> Any:
    kind = value.WhichOneof("value")
    if kind in ("string_value", "bool_value", "int_value", "double_value"):
        return getattr(value, kind)
    if kind == "array_value" and depth < 8:
        decoded = [_proto_value(v, depth + 1) for v in value.array_value.values]
        return tuple(v for v in decoded if isinstance(v, (str, bool, int, float)))
    return None


def _proto_attributes(items: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        value = _proto_value(item.value)
        if value is not None:
            out[item.key] = value
    return out


def decode_protobuf(body: bytes) -> list[SpanRecord]:
    """Spans of a protobuf ``ExportTraceServiceRequest``; needs
    opentelemetry-proto (``pip install 'dunetrace[otel]'``)."""
    try:
        from google.protobuf.message import DecodeError
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
    except ImportError:
        raise BadTraces(
            "this collector reads OTLP/JSON only; for protobuf install opentelemetry-proto: "
            "pip install 'dunetrace[collector,otel]'",
            415,
        ) from None
    try:
        request = ExportTraceServiceRequest.FromString(body)
    except DecodeError:
        raise BadTraces("body is not a protobuf ExportTraceServiceRequest") from None
    records: list[SpanRecord] = []
    for resource_spans in request.resource_spans:
        service = _proto_attributes(resource_spans.resource.attributes).get("service.name")
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                if len(span.trace_id) != 16 or len(span.span_id) != 8:
                    continue
                events = [(e.name, _proto_attributes(e.attributes)) for e in span.events]
                records.append(
                    SpanRecord(
                        bytes(span.trace_id),
                        int.from_bytes(span.span_id, "big"),
                        int.from_bytes(span.parent_span_id, "big") if len(span.parent_span_id) == 8 else None,
                        span.name,
                        _proto_attributes(span.attributes),
                        span.start_time_unix_nano,
                        span.end_time_unix_nano,
                        _error(span.status.code, span.status.message, events),
                        service if isinstance(service, str) else None,
                    )
                )
    return records


# -- assembling and replaying traces ---------------------------------------------


def _store_exporter(collector: Collector) -> Any:
    from dunetrace.plugins import hookimpl

    class StoreExporter:
        """The collector's client's only exporter: straight into its store."""

        @hookimpl
        def dunetrace_export(self, batch: Any) -> None:
            _, ended = collector.store.ingest(batch.events, uuid.uuid4().hex)
            if ended:
                collector.judge.submit(ended)

    return StoreExporter()


class TraceReceiver:
    """Holds received spans by trace until each trace is complete, then
    replays it into runs. At most ``max_spans`` spans, and about
    ``max_bytes`` of their attributes, are held: past that the oldest traces
    are replayed as they are."""

    def __init__(
        self, collector: Collector, trace_idle: float = 30.0, max_spans: int = 100_000, max_bytes: int = 64 << 20
    ) -> None:
        self.collector = collector
        self.trace_idle = trace_idle
        self.max_spans = max_spans
        self.max_bytes = max_bytes
        self._bytes = 0
        self._traces: dict[bytes, tuple[float, list[SpanRecord]]] = {}
        self._held = 0
        self._lock = threading.Lock()
        self._client: Dunetrace | None = None
        self._translators: dict[str | None, Any] = {}
        self._stop = threading.Event()
        self._sweeper: threading.Thread | None = None
        self.counts = {"spans": 0, "traces": 0}

    def _translator(self, service: str | None) -> Any:
        from dunetrace import Dunetrace
        from dunetrace.integrations.otel.translator import SpanTranslator

        if self._client is None:
            self._client = Dunetrace(export="none", flush_interval=0.05)
            self._client.plugins.register(_store_exporter(self.collector), name="dunetrace.collector.store")
        translator = self._translators.get(service)
        if translator is None:
            if len(self._translators) >= 1000:  # services named by senders: bounded
                service = None
                translator = self._translators.get(None)
            if translator is None:
                translator = SpanTranslator(self._client, service, lambda record: record.error)
                self._translators[service] = translator
        return translator

    def receive(self, records: list[SpanRecord]) -> None:
        """Hold ``records``; replay the traces they complete (on this thread),
        and wait until their events are stored."""
        ready: list[list[SpanRecord]] = []
        now = time.monotonic()
        with self._lock:
            rooted: list[bytes] = []
            for record in records:
                held = self._traces.get(record.trace_id)
                spans = held[1] if held is not None else []
                spans.append(record)
                self._traces[record.trace_id] = (now, spans)
                self._held += 1
                self._bytes += record.size
                if record.parent_id is None:
                    rooted.append(record.trace_id)
            # A root ends its trace: its spans came before it or in the same
            # request, in any order within it.
            for trace_id in rooted:
                if trace_id in self._traces:
                    ready.append(self._forget(trace_id))
            while (self._held > self.max_spans or self._bytes > self.max_bytes) and self._traces:
                ready.append(self._forget(next(iter(self._traces))))
            if self._sweeper is None and self._traces:
                self._sweeper = threading.Thread(target=self._sweep, name="dunetrace-otlp-sweep", daemon=True)
                self._sweeper.start()
        self.counts["spans"] += len(records)
        self._replay(ready)

    def _forget(self, trace_id: bytes) -> list[SpanRecord]:
        spans = self._traces.pop(trace_id)[1]
        self._held -= len(spans)
        self._bytes -= sum(span.size for span in spans)
        return spans

    def _sweep(self) -> None:
        while not self._stop.wait(min(1.0, self.trace_idle / 2)):
            self.replay_idle()

    def replay_idle(self, now: float | None = None) -> None:
        """Replay the traces quiet for ``trace_idle`` seconds."""
        now = time.monotonic() if now is None else now
        with self._lock:
            idle = [tid for tid, (seen, _) in self._traces.items() if now - seen >= self.trace_idle]
            ready = [self._forget(tid) for tid in idle]
        self._replay(ready)

    def _replay(self, traces: list[list[SpanRecord]]) -> None:
        if not traces:
            return
        for spans in traces:
            self.counts["traces"] += 1
            _replay_trace(spans, self._translator)
        if self._client is not None:
            self._client.flush(10)

    def stop(self) -> None:
        """Replay what is held, and stop."""
        self._stop.set()
        self.replay_idle(now=float("inf"))
        if self._client is not None:
            for translator in self._translators.values():
                translator.close()
            self._client.shutdown(10)
            self._client = None
            self._translators.clear()


def _replay_trace(spans: list[SpanRecord], translator_for: Any) -> None:
    """Start and end each span of one trace in an order a live tracer could
    have produced: a span, then its children by start time, then its end."""
    by_id = {span.span_id: span for span in spans}
    roots: list[SpanRecord] = []
    for span in spans:
        span.children = []
    for span in spans:
        parent = by_id.get(span.parent_id) if span.parent_id is not None else None
        if parent is not None and parent is not span:
            parent.children.append(span)
        else:
            roots.append(span)
    roots.sort(key=lambda s: s.start_ns)
    for root in roots:
        translator = translator_for(root.service)
        stack: list[tuple[SpanRecord, bool]] = [(root, False)]
        seen: set[int] = set()
        while stack:
            span, done = stack.pop()
            if done:
                translator.end(
                    span.span_id, span.parent_id, span.name, span.attributes, span.start_ns, span.end_ns, span
                )
                continue
            if span.span_id in seen:  # a cycle of parent ids from a broken sender
                continue
            seen.add(span.span_id)
            translator.start(span.span_id, span.parent_id, span.name, span.attributes, span.start_ns)
            stack.append((span, True))
            for child in sorted(span.children, key=lambda s: s.start_ns, reverse=True):
                stack.append((child, False))
