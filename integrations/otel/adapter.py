"""``DunetraceSpanProcessor``: the OpenTelemetry SDK side of receiving spans.

Added to a ``TracerProvider`` beside the user's own processors, it reads each
span's ids, name, attributes, times and error and hands them to the
framework-free :class:`~.translator.SpanTranslator`. It never raises into the
tracer that called it (one exception: ``dunetrace.PolicyViolation``, which a
policy raises on purpose to stop the agent).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.trace import SpanProcessor
from opentelemetry.trace import StatusCode

from dunetrace import log
from dunetrace.log import warn_once
from dunetrace.plugins import hookimpl

from .conventions import KIND_KEYS
from .export import SCOPE
from .translator import SpanTranslator

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span, TracerProvider

    from dunetrace import Dunetrace

__all__ = ["DunetraceSpanProcessor", "instrument", "uninstrument"]

_ERROR = StatusCode.ERROR


def span_error(span: Any) -> tuple[str, str] | None:
    """(exception class name, message) of a span whose status is ERROR, from
    its ``exception`` event (the SDK's ``record_exception``) or else its
    status description; None when it did not fail."""
    status = span.status
    if status is None or status.status_code is not _ERROR:
        return None
    for event in reversed(span.events or ()):
        if event.name == "exception":
            attributes = event.attributes or {}
            kind = attributes.get("exception.type")
            message = attributes.get("exception.message")
            return (kind if isinstance(kind, str) else "Error", message if isinstance(message, str) else "")
    description = status.description
    return ("Error", description if isinstance(description, str) else "")


def _attributes(span: Any) -> Any:
    """The span's attributes as the plain dict the SDK keeps them in, where
    it is there. ``span.attributes`` (SDK 1.x) is a read-only view over a
    ``BoundedAttributes``, whose ``get`` raises and catches a KeyError for
    each missing key: that was most of what a span that is not GenAI cost
    us (about 4 us of 6 here, per span)."""
    held = getattr(getattr(span, "_attributes", None), "_dict", None)
    return held if isinstance(held, dict) else span.attributes


class DunetraceSpanProcessor(SpanProcessor):
    """Turns the GenAI spans of a ``TracerProvider`` into Dunetrace runs::

        provider.add_span_processor(DunetraceSpanProcessor(dt, agent_id="support-bot"))

    Agent spans become runs (nested ones child runs), model spans LLM calls,
    tool spans tool calls, retrieval spans retrievals; see
    :mod:`dunetrace.integrations.otel`. ``agent_id`` names the root runs
    (default: each agent span's own agent name). Spans that are not GenAI are
    ignored; a span we cannot read is counted in ``stats()`` and skipped.
    """

    def __init__(self, dt: Dunetrace, agent_id: str | None = None, *, max_open_spans: int = 100_000) -> None:
        if not hasattr(dt, "run") or not hasattr(dt, "plugins"):
            raise TypeError(f"DunetraceSpanProcessor needs a Dunetrace client as its first argument; got {dt!r}")
        if agent_id is not None and (not isinstance(agent_id, str) or not agent_id.strip()):
            raise ValueError(f"agent_id must be a non-empty string naming the agent, or None; got {agent_id!r}")
        if isinstance(max_open_spans, bool) or not isinstance(max_open_spans, int) or max_open_spans < 1:
            raise ValueError(f"max_open_spans must be a positive int; got {max_open_spans!r}")
        self.client = dt
        self.agent_id = agent_id
        self.translator = SpanTranslator(dt, agent_id, span_error, max_open_spans)
        #: The translator's open spans, read on every span.
        self._open = self.translator._spans

    def __repr__(self) -> str:
        return f"<DunetraceSpanProcessor agent_id={self.agent_id!r}>"

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        try:
            attributes = _attributes(span)
            # The common case first: a span that is not GenAI, in no run.
            if KIND_KEYS.isdisjoint(attributes) and not self._open:
                return
            parent = span.parent
            parent_id = parent.span_id if parent is not None else None
            if parent_id not in self._open and KIND_KEYS.isdisjoint(attributes):
                return
            scope = span.instrumentation_scope
            if scope is not None and scope.name == SCOPE:
                return  # our own runs, exported through this provider
            context = span.context
            if context is None:
                self._malformed("no span context")
                return
            self.translator.start(context.span_id, parent_id, span.name, attributes, span.start_time)
        except Exception as exc:
            self._failed(exc, "on_start")

    def on_end(self, span: ReadableSpan) -> None:
        try:
            attributes = _attributes(span)
            if KIND_KEYS.isdisjoint(attributes) and not self._open:
                return
            context = span.context
            if context is None:
                self._malformed("no span context")
                return
            if context.span_id not in self._open and KIND_KEYS.isdisjoint(attributes):
                return
            scope = span.instrumentation_scope
            if scope is not None and scope.name == SCOPE:
                return
            parent = span.parent
            self.translator.end(
                context.span_id,
                parent.span_id if parent is not None else None,
                span.name,
                attributes,
                span.start_time,
                span.end_time,
                span,
            )
        except Exception as exc:
            self._failed(exc, "on_end")

    def shutdown(self) -> None:
        """The provider shuts down: runs still open end as ``abandoned``."""
        try:
            self.translator.close()
        except Exception as exc:
            self._failed(exc, "shutdown")

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """The provider flushes: so does the Dunetrace client."""
        try:
            return bool(self.client.flush(max(0.0, timeout_millis / 1000.0)))
        except Exception as exc:
            self._failed(exc, "force_flush")
            return False

    def stats(self) -> dict[str, int]:
        """``runs`` opened, GenAI ``spans`` read, ``malformed_spans`` and
        ``untracked_spans`` skipped, and ``open_runs`` now."""
        return {**self.translator.counts, "open_runs": self.translator.open_runs}

    def _malformed(self, why: str) -> None:
        self.translator.counts["malformed_spans"] += 1
        warn_once(f"otel-malformed:{why}", "dunetrace: a span was skipped (%s)", why)

    def _failed(self, exc: Exception, where: str) -> None:
        if getattr(exc, "dunetrace_passthrough", False) or log.strict:
            raise exc
        self.translator.counts["malformed_spans"] += 1
        warn_once(
            f"otel-internal:{where}:{type(exc).__name__}",
            "dunetrace: a span could not be read in %s and was skipped (the tracer is unaffected): %r",
            where,
            exc,
        )


# -- instrument / uninstrument ---------------------------------------------------


class _Installation:
    """What ``instrument()`` added: one processor on one provider, and this
    object as a plugin on the client, which detaches it at ``dt.shutdown()``."""

    def __init__(self, client: Dunetrace, provider: Any, processor: DunetraceSpanProcessor) -> None:
        self.client = client
        self.provider = provider
        self.processor = processor

    @hookimpl
    def dunetrace_shutdown(self, client: Dunetrace) -> None:
        # Called before the client delivers what is left: runs still open
        # end now (as abandoned), so their ends are sent.
        if client is self.client:
            self.processor.shutdown()
            _remove(self)

    def detach(self) -> None:
        _take_off(self.provider, self.processor)
        if self.client.plugins.is_registered(self):
            self.client.plugins.unregister(self)
        self.processor.shutdown()


def _take_off(provider: Any, processor: DunetraceSpanProcessor) -> None:
    # The SDK (1.x) has add_span_processor but no remove: its multi-processor
    # keeps a tuple under a lock, which is replaced without ours. Where that
    # is not there, the processor is emptied instead of removed.
    multi = getattr(provider, "_active_span_processor", None)
    current = getattr(multi, "_span_processors", None)
    lock = getattr(multi, "_lock", None)
    if isinstance(current, tuple) and lock is not None:
        with lock:
            multi._span_processors = tuple(p for p in multi._span_processors if p is not processor)
    else:  # pragma: no cover - other SDK versions
        warn_once("otel-remove", "dunetrace: could not remove the span processor; it stops reporting instead")
        processor.translator._max = 0


_installed: dict[int, _Installation] = {}
_lock = threading.Lock()


def instrument(
    dt: Dunetrace, agent_id: str | None = None, *, tracer_provider: TracerProvider | None = None
) -> DunetraceSpanProcessor:
    """Add a :class:`DunetraceSpanProcessor` to ``tracer_provider`` (default:
    the global one, which must be the SDK's ``TracerProvider``). Idempotent
    per provider: the same client and agent_id return the processor already
    there; others replace it. ``uninstrument()`` or ``dt.shutdown()`` takes
    it off again."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider

    provider = tracer_provider if tracer_provider is not None else trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        raise TypeError(
            "dunetrace.integrations.otel.instrument needs an SDK TracerProvider; the global one is "
            f"{type(provider).__name__}: call trace.set_tracer_provider(TracerProvider()) first, "
            "or pass tracer_provider="
        )
    with _lock:
        current = _installed.get(id(provider))
        if current is not None and current.provider is provider:
            if current.client is dt and current.processor.agent_id == agent_id:
                return current.processor
            del _installed[id(provider)]
            current.detach()
        processor = DunetraceSpanProcessor(dt, agent_id)
        installation = _Installation(dt, provider, processor)
        dt.plugins.register(installation)
        provider.add_span_processor(processor)
        _installed[id(provider)] = installation
        return processor


def uninstrument(tracer_provider: TracerProvider | None = None) -> None:
    """Take off what ``instrument()`` added (to ``tracer_provider``, or to
    every provider); runs still open end as ``abandoned``."""
    with _lock:
        if tracer_provider is None:
            taken = list(_installed.values())
            _installed.clear()
        else:
            found = _installed.pop(id(tracer_provider), None)
            taken = [found] if found is not None else []
    for installation in taken:
        installation.detach()


def _remove(installation: _Installation) -> None:
    with _lock:
        if _installed.get(id(installation.provider)) is installation:
            del _installed[id(installation.provider)]
    try:
        installation.detach()
    except Exception as exc:  # the client is going away; do not stop its shutdown
        warn_once("otel-detach", "dunetrace: could not take the span processor off its provider: %r", exc)
