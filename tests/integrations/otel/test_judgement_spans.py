"""``dunetrace serve --otlp-endpoint``: what the collector finds after a run
ended reaches the run's own OpenTelemetry trace, as a ``dunetrace.judgement``
span under the run's ``invoke_agent`` span, sent over OTLP/HTTP to a real
receiver on 127.0.0.1; what was found live is not sent again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dunetrace import Dunetrace
from dunetrace.collector.judgement_spans import JudgementSpans, span_ids
from dunetrace.integrations.otel import export_to
from tests.collector.serve import Serve

from .test_export import OtlpReceiver

SENTINEL = "sentinel-judgement-5c1e"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver()
    yield server
    server.close()


def looping_run(dt: Dunetrace) -> str:
    with dt.run("looper", user_input=SENTINEL, tools=["search"]) as run:
        for _ in range(4):
            step = run.tool_called("search", {"q": SENTINEL})
            run.tool_responded("search", True, output=SENTINEL, latency_ms=1.0, step=step)
        run.final_answer()
    return run.run_id


def judgement_spans(receiver: OtlpReceiver) -> list[Any]:
    return [s for s in receiver.spans() if s.name.startswith("dunetrace.judgement")]


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
    return value


def test_the_collectors_signals_join_the_runs_trace(tmp_path: Path, receiver: OtlpReceiver) -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with Serve(tmp_path / "c.db", "--otlp-endpoint", receiver.url) as serve:
        dt = Dunetrace(endpoint=serve.url, flush_interval=0.05, detectors=False)
        export_to(dt, provider)
        run_id = looping_run(dt)
        dt.shutdown(timeout=10)
        found = wait_for(lambda: judgement_spans(receiver))
    root = next(s for s in memory.get_finished_spans() if s.name == "invoke_agent looper")
    [span] = found
    assert span.name == "dunetrace.judgement looper"
    assert span.trace_id == root.context.trace_id.to_bytes(16, "big")
    assert span.parent_span_id == root.context.span_id.to_bytes(8, "big")
    attributes = {a.key: a.value for a in span.attributes}
    assert attributes["dunetrace.run_id"].string_value == run_id
    assert [v.string_value for v in attributes["dunetrace.signals"].array_value.values] == ["TOOL_LOOP"]
    [event] = span.events
    fields = {a.key: a.value for a in event.attributes}
    assert fields["signal_name"].string_value == "TOOL_LOOP"
    assert fields["source"].string_value == "dunetrace-collector"
    assert all(SENTINEL.encode() not in body for _, body in receiver.bodies)


def test_what_was_found_live_is_not_sent_again(tmp_path: Path, receiver: OtlpReceiver) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    with Serve(tmp_path / "c.db", "--otlp-endpoint", receiver.url) as serve:
        dt = Dunetrace(endpoint=serve.url, flush_interval=0.05, detectors=True)
        export_to(dt, provider)
        run_id = looping_run(dt)
        dt.shutdown(timeout=10)
        with httpx.Client(base_url=serve.url, timeout=10) as http:
            wait_for(lambda: http.get(f"/api/runs/{run_id}").json()["run"]["status"] == "judged")
            shown = http.get("/api/signals", params={"run_id": run_id}).json()["items"]
        assert [(s["detector"], s["live"]) for s in shown] == [("TOOL_LOOP", True)]
        time.sleep(1.0)  # the batch processor's delay is shorter; nothing came
    assert judgement_spans(receiver) == []


def test_a_run_without_span_ids_gets_a_trace_of_its_own(tmp_path: Path, receiver: OtlpReceiver) -> None:
    with Serve(tmp_path / "c.db", "--otlp-endpoint", receiver.url) as serve:
        dt = Dunetrace(endpoint=serve.url, flush_interval=0.05, detectors=False)
        run_id = looping_run(dt)  # no OpenTelemetry export in this agent
        dt.shutdown(timeout=10)
        [span] = wait_for(lambda: judgement_spans(receiver))
    assert span.parent_span_id == b""
    attributes = {a.key: a.value for a in span.attributes}
    assert attributes["dunetrace.run_id"].string_value == run_id


@pytest.mark.parametrize(
    "payload",
    [
        {"signal_name": "OTEL_SPAN"},
        {"signal_name": "OTEL_SPAN", "trace_id": "zz", "span_id": "01"},
        {"signal_name": "OTEL_SPAN", "trace_id": "0" * 32, "span_id": "1" * 16},
        {"signal_name": "OTEL_SPAN", "trace_id": "1" * 33, "span_id": "1" * 16},
        {"signal_name": "OTEL_SPAN", "trace_id": 5, "span_id": "1" * 16},
    ],
)
def test_malformed_span_ids_count_as_none(payload: dict[str, Any]) -> None:
    assert span_ids([{"event_type": "external.signal", "payload": payload}]) is None


def test_a_bad_endpoint_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="--otlp-endpoint must be an http"):
        JudgementSpans("127.0.0.1:4318")


def test_serve_refuses_a_bad_endpoint(tmp_path: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "dunetrace.cli", "serve", "--db", str(tmp_path / "c.db"), "--otlp-endpoint", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "OTLP endpoint must be an http(s) URL" in done.stderr
