"""Runs exported as OpenTelemetry spans: the real SDK's in-memory exporter,
and OTLP/HTTP (protobuf) to a receiver on 127.0.0.1."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from dunetrace import Dunetrace
from dunetrace.integrations.otel import export_to
from dunetrace.live import Signal
from tests.ingest_server import IngestServer

from .conftest import Traced

SENTINEL = "PLMN-export-sentinel-3390"


@pytest.fixture
def exported(dt: Dunetrace) -> Iterator[InMemorySpanExporter]:
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    exporter = export_to(dt, provider)
    yield memory
    exporter.close()
    provider.shutdown()


def agent_run(dt: Dunetrace, secret: str = "") -> str:
    @dt.tool
    def search(query: str) -> str:
        if "fail" in query:
            raise TimeoutError(f"search timed out {secret}")
        return f"found {secret}"

    with dt.run("planner", user_input=f"plan a trip {secret}", model="m1", tools=["search"]) as run:
        step = run.llm_called("m1", prompt_tokens=300)
        run.llm_responded(12, 80.0, "tool_calls", output=f"call search {secret}", step=step)
        search(f"flights {secret}")
        with contextlib.suppress(TimeoutError):
            search(f"fail {secret}")
        step = run.retrieval_called("hotels", query=f"cheap {secret}")
        run.retrieval_responded("hotels", 3, 0.82, 4.0, step=step)
        with dt.run("booker", user_input=f"book it {secret}") as child:
            child.tool_called("book", {"card": secret})  # never answered: ends with its run
        run.fire(Signal("TOOL_LOOP", "HIGH", 0.9, run.step_index, {"tool": "search"}))
        run.final_answer()
    assert dt.flush(5)  # spans are made on the client's drain thread, and at a flush
    return run.run_id


def test_a_run_is_a_tree_of_genai_spans(dt: Dunetrace, exported: InMemorySpanExporter) -> None:
    run_id = agent_run(dt)
    spans = {s.name: s for s in exported.get_finished_spans()}
    assert set(spans) == {
        "invoke_agent planner",
        "chat m1",
        "execute_tool search",
        "retrieval hotels",
        "invoke_agent booker",
        "execute_tool book",
    }
    root, child = spans["invoke_agent planner"], spans["invoke_agent booker"]
    assert root.parent is None and root.attributes["gen_ai.agent.name"] == "planner"
    assert root.attributes["dunetrace.run_id"] == run_id and root.attributes["gen_ai.request.model"] == "m1"
    assert root.attributes["dunetrace.exit_reason"] == "final_answer"
    assert list(root.attributes["dunetrace.signals"]) == ["TOOL_LOOP"]
    (signal,) = [e for e in root.events if e.name == "dunetrace.signal"]
    assert signal.attributes["signal_name"] == "TOOL_LOOP" and signal.attributes["severity"] == "HIGH"
    for span in spans.values():
        assert span.context.trace_id == root.context.trace_id
    assert child.parent.span_id == root.context.span_id
    assert spans["execute_tool book"].parent.span_id == child.context.span_id
    assert spans["execute_tool book"].attributes["dunetrace.unfinished"] is True
    chat = spans["chat m1"]
    assert chat.parent.span_id == root.context.span_id
    assert chat.attributes["gen_ai.operation.name"] == "chat"
    assert chat.attributes["gen_ai.usage.input_tokens"] == 300 and chat.attributes["gen_ai.usage.output_tokens"] == 12
    assert list(chat.attributes["gen_ai.response.finish_reasons"]) == ["tool_calls"]
    tools = [s for s in exported.get_finished_spans() if s.name == "execute_tool search"]
    assert [s.status.status_code for s in tools] == [StatusCode.UNSET, StatusCode.ERROR]
    assert tools[0].attributes["gen_ai.tool.name"] == "search"
    retrieval = spans["retrieval hotels"]
    assert retrieval.attributes["dunetrace.result_count"] == 3 and retrieval.attributes["dunetrace.top_score"] == 0.82
    assert retrieval.end_time - retrieval.start_time >= 0


def test_an_errored_run_has_error_status_and_class_never_message(dt: Dunetrace, exported: InMemorySpanExporter) -> None:
    with pytest.raises(ValueError), dt.run("a", user_input="x"):
        raise ValueError(f"card declined {SENTINEL}")
    assert dt.flush(5)
    (span,) = exported.get_finished_spans()
    assert span.status.status_code is StatusCode.ERROR and span.attributes["error.type"] == "ValueError"
    assert SENTINEL not in span.to_json()


def test_only_hashes_leave_through_the_spans(dt: Dunetrace, exported: InMemorySpanExporter) -> None:
    agent_run(dt, SENTINEL)
    spans = exported.get_finished_spans()
    assert len(spans) == 7
    text = "".join(s.to_json() for s in spans)
    assert SENTINEL not in text
    assert "dunetrace.args_hash" in text and "dunetrace.input_hash" in text


def test_export_alone_with_ingest_shipping_off(ingest: IngestServer) -> None:
    client = Dunetrace(endpoint=ingest.url, export="none")
    provider = TracerProvider()
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    export_to(client, provider)
    with client.run("a") as run:
        run.llm_responded(1, step=run.llm_called("m"))
    client.shutdown(timeout=5)
    assert [s.name for s in memory.get_finished_spans()] == ["chat m", "invoke_agent a"]
    assert ingest.requests == []


def test_exporting_and_receiving_on_one_provider_does_not_loop(dt: Dunetrace, received: Any) -> None:
    traced = Traced(dt, "received")
    exporter = export_to(dt, traced.provider)
    with (
        traced.tracer.start_as_current_span("invoke_agent", attributes={"gen_ai.operation.name": "invoke_agent"}),
        traced.tracer.start_as_current_span("chat", attributes={"gen_ai.operation.name": "chat"}),
    ):
        pass
    with dt.run("direct"):
        pass
    events = received()
    assert sorted({e["agent_id"] for e in events}) == ["direct", "received"]
    # Each run: started, its span ids (OTEL_SPAN), and its end; the received
    # one its chat call too. Nothing comes back round from our own spans.
    signals = [e["payload"]["signal_name"] for e in events if e["event_type"] == "external.signal"]
    assert signals == ["OTEL_SPAN", "OTEL_SPAN"]
    assert len(events) == 8
    # The received run was exported too: the user's pipeline sees both.
    names = sorted(s.name for s in traced.exporter.get_finished_spans())
    assert names.count("invoke_agent received") == 1 and names.count("invoke_agent direct") == 1
    exporter.close()
    traced.provider.shutdown()


class OtlpReceiver:
    """``POST /v1/traces`` on 127.0.0.1, protobuf bodies recorded."""

    def __init__(self) -> None:
        self.bodies: list[tuple[str, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                receiver.bodies.append((self.headers.get("content-type", ""), body))
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1/traces"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def spans(self) -> list[Any]:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        out = []
        for _, body in self.bodies:
            request = ExportTraceServiceRequest.FromString(body)
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    out.extend(scope.spans)
        return out

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_over_otlp_http_to_a_local_receiver(dt: Dunetrace) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    receiver = OtlpReceiver()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=receiver.url, timeout=5)))
    exporter = export_to(dt, provider)
    try:
        agent_run(dt, SENTINEL)
        assert provider.force_flush(10_000)
        spans = receiver.spans()
        assert sorted(s.name for s in spans) == sorted(
            [
                "invoke_agent planner",
                "chat m1",
                "execute_tool search",
                "execute_tool search",
                "retrieval hotels",
                "invoke_agent booker",
                "execute_tool book",
            ]
        )
        assert {ct for ct, _ in receiver.bodies} == {"application/x-protobuf"}
        assert all(SENTINEL.encode() not in body for _, body in receiver.bodies)
        by_name = {s.name: s for s in spans}
        assert by_name["invoke_agent booker"].parent_span_id == by_name["invoke_agent planner"].span_id
        attributes = {a.key: a.value for a in by_name["chat m1"].attributes}
        assert attributes["gen_ai.request.model"].string_value == "m1"
        assert attributes["gen_ai.usage.input_tokens"].int_value == 300
    finally:
        exporter.close()
        provider.shutdown()
        receiver.close()


def test_export_to_is_idempotent_per_provider(dt: Dunetrace, exported: InMemorySpanExporter) -> None:
    provider = TracerProvider()
    first = export_to(dt, provider)
    assert export_to(dt, provider) is first
    first.close()
    again = export_to(dt, provider)
    assert again is not first
    again.close()


def test_bad_arguments_name_what_to_fix(dt: Dunetrace) -> None:
    with pytest.raises(TypeError, match="Dunetrace client"):
        export_to(object(), TracerProvider())  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="TracerProvider"):
        export_to(dt, object())  # type: ignore[arg-type]


def test_step_spans_are_made_off_the_agents_thread_under_the_span_current_there(dt: Dunetrace) -> None:
    from opentelemetry.sdk.trace import SpanProcessor

    class Threads(SpanProcessor):
        def __init__(self) -> None:
            self.seen: dict[str, int] = {}

        def on_start(self, span: Any, parent_context: Any = None) -> None:
            self.seen[span.name] = threading.get_ident()

    provider = TracerProvider()
    memory, threads = InMemorySpanExporter(), Threads()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    provider.add_span_processor(threads)
    exporter = export_to(dt, provider)
    try:
        with provider.get_tracer("app").start_as_current_span("POST /chat") as request, dt.run("a") as run:
            run.tool_responded("t", True, step=run.tool_called("t"))
        deadline = time.monotonic() + 5
        while len(memory.get_finished_spans()) < 2:  # the drain thread wakes every 50 ms here
            assert time.monotonic() < deadline, "the drain thread made no spans"
            time.sleep(0.01)
    finally:
        exporter.close()
    spans = {s.name: s for s in memory.get_finished_spans()}
    assert spans["invoke_agent a"].parent.span_id == request.get_span_context().span_id
    # The run's own span is made where it starts (its ids travel with the
    # run, see test_the_run_sends_its_span_ids); every step span elsewhere.
    assert threads.seen["invoke_agent a"] == threading.get_ident()
    assert threads.seen["execute_tool t"] != threading.get_ident()


def test_the_run_sends_its_span_ids(ingest: IngestServer) -> None:
    from dunetrace.integrations.otel.export import SPAN_SIGNAL

    dt = Dunetrace(endpoint=ingest.url, api_key="dt_test")
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    export_to(dt, provider)
    with dt.run("a") as run:
        run.tool_responded("t", True, step=run.tool_called("t"))
    dt.shutdown()
    root = next(s for s in memory.get_finished_spans() if s.name == "invoke_agent a")
    sent = [e for e in ingest.events if e["event_type"] == "external.signal"]
    assert [e["payload"]["signal_name"] for e in sent] == [SPAN_SIGNAL]
    assert sent[0]["payload"]["trace_id"] == f"{root.context.trace_id:032x}"
    assert sent[0]["payload"]["span_id"] == f"{root.context.span_id:016x}"
    assert sent[0]["step_index"] == 0
    # It is how the ids travel, not a signal about the run: not on the span.
    assert all(event.attributes.get("signal_name") != SPAN_SIGNAL for event in root.events)
    assert "dunetrace.signals" not in (root.attributes or {})
