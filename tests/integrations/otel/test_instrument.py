"""instrument() / uninstrument(): idempotent, and taking off exactly what
was added."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NoOpTracerProvider

from dunetrace import Dunetrace
from dunetrace.integrations.otel import DunetraceSpanProcessor, instrument, uninstrument
from tests.ingest_server import IngestServer


def processors(provider: TracerProvider) -> tuple[Any, ...]:
    return provider._active_span_processor._span_processors


def test_instrument_is_idempotent_and_uninstrument_restores(dt: Dunetrace, received: Any) -> None:
    provider = TracerProvider()
    mine = SimpleSpanProcessor(InMemorySpanExporter())
    provider.add_span_processor(mine)
    first = instrument(dt, agent_id="a", tracer_provider=provider)
    assert isinstance(first, DunetraceSpanProcessor)
    assert instrument(dt, agent_id="a", tracer_provider=provider) is first
    second = instrument(dt, agent_id="b", tracer_provider=provider)
    assert second is not first and processors(provider) == (mine, second)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("invoke_agent", attributes={"gen_ai.operation.name": "invoke_agent"}):
        pass
    assert [e["agent_id"] for e in received()] == ["b", "b"]
    uninstrument(provider)
    assert processors(provider) == (mine,)
    with tracer.start_as_current_span("invoke_agent", attributes={"gen_ai.operation.name": "invoke_agent"}):
        pass
    assert len(received()) == 2
    uninstrument(provider)  # nothing left to take off: no error


def test_shutdown_of_the_client_takes_the_processor_off(ingest: IngestServer) -> None:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    provider = TracerProvider()
    instrument(client, tracer_provider=provider)
    span = provider.get_tracer("t").start_span("invoke_agent", attributes={"gen_ai.operation.name": "invoke_agent"})
    client.shutdown(timeout=5)
    assert processors(provider) == ()
    assert [e["event_type"] for e in ingest.events] == ["run.started", "run.completed"]
    assert ingest.events[-1]["payload"]["exit_reason"] == "abandoned"
    span.end()


def test_a_provider_that_is_not_the_sdks_is_refused_clearly(dt: Dunetrace) -> None:
    with pytest.raises(TypeError, match="SDK TracerProvider"):
        instrument(dt, tracer_provider=NoOpTracerProvider())  # type: ignore[arg-type]
