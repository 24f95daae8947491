"""Fixtures of the OpenTelemetry tests: a real SDK TracerProvider with a
DunetraceSpanProcessor beside the user's own exporter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dunetrace import Dunetrace
from dunetrace.integrations.otel import DunetraceSpanProcessor


@pytest.fixture(autouse=True)
def otel_sdk_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    """The suite sets OTEL_SDK_DISABLED (so CrewAI sends no telemetry), which
    turns an SDK TracerProvider into a no-op; these tests need a real one,
    which sends nowhere but to the processors they add."""
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)


class Traced:
    """A real SDK TracerProvider with the user's own in-memory exporter and
    a DunetraceSpanProcessor beside it."""

    def __init__(self, dt: Dunetrace, agent_id: str | None) -> None:
        self.provider = TracerProvider()
        self.exporter = InMemorySpanExporter()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.processor = DunetraceSpanProcessor(dt, agent_id=agent_id)
        self.provider.add_span_processor(self.processor)
        self.tracer = self.provider.get_tracer("tests")


@pytest.fixture
def traced(dt: Dunetrace) -> Iterator[Traced]:
    t = Traced(dt, "otel-agent")
    yield t
    t.provider.shutdown()


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Any]:
    """A real collector (uvicorn on 127.0.0.1, a free port)."""
    from dunetrace.collector.server import BackgroundServer
    from dunetrace.collector.settings import Settings

    server = BackgroundServer(Settings(db_path=str(tmp_path / "collector.db"))).start()
    yield server
    server.stop()


@pytest.fixture
def to_collector(collector: Any) -> Iterator[Dunetrace]:
    client = Dunetrace(endpoint=collector.url, flush_interval=0.05)
    yield client
    client.shutdown(timeout=5)


def collector_signals(collector: Any, run_id: str, timeout: float = 15.0) -> list[str]:
    """The detectors the collector raised on a run, once it is judged."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while True:
        detail = httpx.get(f"{collector.url}/api/runs/{run_id}", timeout=10)
        if detail.status_code == 200 and detail.json()["run"]["status"] == "judged":
            return sorted(s["detector"] for s in detail.json()["signals"])
        assert time.monotonic() < deadline, f"run {run_id} was not judged: {detail.text[:300]}"
        time.sleep(0.05)
