"""The collector's ``POST /v1/traces``: OTLP/HTTP spans, protobuf from the
real OTLP exporter and JSON as another language's SDK writes it, become
runs that are stored and judged."""

from __future__ import annotations

import gzip
import json
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.integrations.llamaindex.recorded import well_formed

from .agents import pydantic_ai_agent
from .conftest import collector_signals

SENTINEL = "TRCE-collector-sentinel-8184"


def runs_of(collector: Any, agent_id: str, count: int = 1, timeout: float = 15.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        items = httpx.get(f"{collector.url}/api/agents/{agent_id}/runs", timeout=10).json()["items"]
        if len(items) >= count:
            return items
        assert time.monotonic() < deadline, f"{agent_id}: {len(items)} runs of {count}"
        time.sleep(0.05)


def events_of(collector: Any, run_id: str) -> list[dict[str, Any]]:
    return httpx.get(f"{collector.url}/api/runs/{run_id}", timeout=10).json()["events"]


def test_a_looping_agent_over_otlp_protobuf_yields_tool_loop(collector: Any) -> None:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "remote-rooms"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{collector.url}/v1/traces", timeout=10)))
    try:
        pydantic_ai_agent(provider, loops=5, secret=SENTINEL).run_sync(f"a room for friday {SENTINEL}")
        assert provider.force_flush(15_000)
    finally:
        provider.shutdown()
    (run,) = runs_of(collector, "remote-rooms")
    assert "TOOL_LOOP" in collector_signals(collector, run["run_id"])
    events = events_of(collector, run["run_id"])
    well_formed(events)
    assert [e["payload"]["tool_name"] for e in events if e["event_type"] == "tool.called"] == ["search"] * 5


def otlp_json(spans: list[dict[str, Any]], service: str = "go-agent") -> bytes:
    return json.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                    "scopeSpans": [{"scope": {"name": "agent-sdk"}, "spans": spans}],
                }
            ]
        }
    ).encode()


def span(span_id: str, parent: str, name: str, start: int, end: int, **attributes: Any) -> dict[str, Any]:
    def value(v: Any) -> dict[str, Any]:
        if isinstance(v, bool):
            return {"boolValue": v}
        if isinstance(v, int):
            return {"intValue": str(v)}
        if isinstance(v, list):
            return {"arrayValue": {"values": [value(x) for x in v]}}
        return {"stringValue": v}

    out = {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": span_id,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(1_700_000_000_000_000_000 + start * 1_000_000),
        "endTimeUnixNano": str(1_700_000_000_000_000_000 + end * 1_000_000),
        "attributes": [{"key": k.replace("__", "."), "value": value(v)} for k, v in attributes.items()],
        "status": {},
    }
    if parent:
        out["parentSpanId"] = parent
    return out


def test_otlp_json_in_two_requests_children_first_is_one_run(collector: Any, tmp_path: Path) -> None:
    agent = "a" * 16
    children = [
        span(
            "b" * 16,
            agent,
            "chat gpt",
            1,
            5,
            gen_ai__operation__name="chat",
            gen_ai__request__model="gpt",
            gen_ai__usage__input_tokens=40,
            gen_ai__response__finish_reasons=["tool_calls"],
            gen_ai__input__messages=json.dumps([{"role": "user", "parts": [{"type": "text", "content": SENTINEL}]}]),
        ),
        span(
            "c" * 16,
            agent,
            "execute_tool lookup",
            6,
            9,
            gen_ai__operation__name="execute_tool",
            gen_ai__tool__name="lookup",
            gen_ai__tool__call__arguments=json.dumps({"q": SENTINEL}),
            gen_ai__tool__call__result=f"result {SENTINEL}",
        ),
    ]
    answer = httpx.post(
        f"{collector.url}/v1/traces", content=otlp_json(children), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 200 and answer.json() == {}
    root = [span(agent, "", "invoke_agent", 0, 10, gen_ai__operation__name="invoke_agent", input__value=SENTINEL)]
    body = gzip.compress(otlp_json(root))
    answer = httpx.post(
        f"{collector.url}/v1/traces",
        content=body,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert answer.status_code == 200
    (run,) = runs_of(collector, "go-agent")
    events = events_of(collector, run["run_id"])
    well_formed(events)
    assert [e["event_type"] for e in events] == [
        "run.started",
        "llm.called",
        "llm.responded",
        "tool.called",
        "tool.responded",
        "run.completed",
    ]
    assert events[0]["timestamp"] == pytest.approx(1_700_000_000.0)
    assert events[2]["payload"]["finish_reason"] == "tool_calls" and events[1]["payload"]["prompt_tokens"] == 40
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("collector.db*"))
    assert stored and SENTINEL.encode() not in stored


def test_bad_requests_are_refused_with_what_to_fix(collector: Any) -> None:
    url = f"{collector.url}/v1/traces"
    answer = httpx.post(url, content=b"spans", headers={"content-type": "text/plain"})
    assert answer.status_code == 415 and "application/x-protobuf" in answer.json()["detail"]
    answer = httpx.post(url, content=b"{not json", headers={"content-type": "application/json"})
    assert answer.status_code == 400
    answer = httpx.post(url, content=b"\xff\x00garbage", headers={"content-type": "application/x-protobuf"})
    assert answer.status_code == 400
    answer = httpx.post(url, content=b'{"resourceSpans": 3}', headers={"content-type": "application/json"})
    assert answer.status_code == 400


def test_api_keys_guard_traces_too(tmp_path: Path) -> None:
    from dunetrace.collector.server import BackgroundServer
    from dunetrace.collector.settings import Settings

    server = BackgroundServer(Settings(db_path=str(tmp_path / "k.db"), api_keys=frozenset({"k1"}))).start()
    try:
        url = f"{server.url}/v1/traces"
        body = otlp_json([span("a" * 16, "", "invoke_agent", 0, 1, gen_ai__operation__name="invoke_agent")])
        assert httpx.post(url, content=body, headers={"content-type": "application/json"}).status_code == 401
        ok = httpx.post(url, content=body, headers={"content-type": "application/json", "authorization": "Bearer k1"})
        assert ok.status_code == 200
    finally:
        server.stop()


def test_a_trace_whose_root_never_comes_is_replayed_when_idle(tmp_path: Path) -> None:
    from dunetrace.collector.app import Collector
    from dunetrace.collector.otlp import TraceReceiver, decode_json
    from dunetrace.collector.settings import Settings

    collector = Collector(Settings(db_path=str(tmp_path / "idle.db")))
    collector.start()
    receiver = TraceReceiver(collector, trace_idle=60)
    try:
        # The agent span's parent is an HTTP span of another service.
        records = decode_json(
            otlp_json(
                [
                    span("b" * 16, "a" * 16, "invoke_agent", 0, 9, gen_ai__operation__name="invoke_agent"),
                    span(
                        "c" * 16,
                        "b" * 16,
                        "execute_tool t",
                        1,
                        2,
                        gen_ai__operation__name="execute_tool",
                        gen_ai__tool__name="t",
                    ),
                ]
            )
        )
        receiver.receive(records)
        assert collector.store.runs(None, None, 10, 0)[1] == 0
        receiver.replay_idle(now=time.monotonic() + 61)
        items, total = collector.store.runs(None, None, 10, 0)
        assert total == 1 and items[0]["agent_id"] == "go-agent"
    finally:
        receiver.stop()
        collector.close()
    assert sqlite3.connect(tmp_path / "idle.db").execute("select count(*) from events").fetchone()[0] == 4


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "resourceSpans",
                    "scopeSpans",
                    "spans",
                    "resource",
                    "attributes",
                    "key",
                    "value",
                    "traceId",
                    "spanId",
                    "parentSpanId",
                    "stringValue",
                    "intValue",
                    "arrayValue",
                    "values",
                    "events",
                    "status",
                    "code",
                    "name",
                    "startTimeUnixNano",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(value=json_values)
def test_any_json_is_decoded_or_refused_as_bad_traces(value: Any) -> None:
    from dunetrace.collector.otlp import BadTraces, decode_json

    try:
        records = decode_json(json.dumps(value).encode())
    except BadTraces:
        return
    assert isinstance(records, list)


def test_what_is_held_is_bounded_in_bytes(tmp_path: Path) -> None:
    from dunetrace.collector.app import Collector
    from dunetrace.collector.otlp import TraceReceiver, decode_json
    from dunetrace.collector.settings import Settings

    collector = Collector(Settings(db_path=str(tmp_path / "bound.db")))
    collector.start()
    receiver = TraceReceiver(collector, trace_idle=60, max_bytes=50_000)
    try:
        big = "x" * 20_000
        for k in range(6):  # traces whose roots never come, each about 20 kB
            body = otlp_json(
                [
                    span(
                        "b" * 16,
                        "a" * 16,
                        "invoke_agent",
                        0,
                        9,
                        gen_ai__operation__name="invoke_agent",
                        input__value=big,
                    )
                ]
            )
            records = decode_json(body.replace(b"5b8efff798038103d269b633813fc60c", f"{k:032x}".encode()))
            receiver.receive(records)
            assert receiver._bytes <= 50_000
        assert collector.store.runs(None, None, 10, 0)[1] == 4  # the oldest, replayed early
    finally:
        receiver.stop()
        collector.close()
