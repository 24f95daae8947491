"""What the dashboard reads: ``/api/timeline`` puts each run in the bucket
of its range where it started (runs sent through the real ingest API with
timestamps of minutes to weeks ago), rates are percent of a bucket's runs,
deploys and version changes are markers; ``/api/signals?since=`` is a time
window; a run's answer carries its child runs; bad values are a 422."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dunetrace.collector.server import BackgroundServer
from dunetrace.collector.settings import Settings

from .wire import event, tool_loop_run


def shifted(
    events: list[dict[str, Any]], at: float, version: str = "v1", parent: str | None = None
) -> list[dict[str, Any]]:
    first = events[0]["timestamp"]
    return [
        {**e, "timestamp": at + (e["timestamp"] - first) * 0.01, "agent_version": version, "parent_run_id": parent}
        for e in events
    ]


def errored_run(run_id: str, agent: str) -> list[dict[str, Any]]:
    return [
        event("run.started", run_id, 0, agent),
        event("llm.called", run_id, 1, agent, model="m"),
        event("llm.responded", run_id, 1, agent, finish_reason="stop", output_length=5, latency_ms=3.0),
        event("run.errored", run_id, 1, agent, error_type="TimeoutError"),
    ]


def healthy_run(run_id: str, agent: str) -> list[dict[str, Any]]:
    return [
        event("run.started", run_id, 0, agent),
        event("llm.called", run_id, 1, agent, model="m"),
        event("llm.responded", run_id, 1, agent, finish_reason="stop", output_length=5, latency_ms=3.0),
        event("run.completed", run_id, 1, agent, exit_reason="final_answer"),
    ]


def get(collector: BackgroundServer, path: str, status: int = 200) -> Any:
    response = httpx.get(collector.url + path, timeout=10)
    assert response.status_code == status, response.text
    return response.json()


def test_timeline_buckets_rates_and_markers_over_each_range(collector: BackgroundServer) -> None:
    now = time.time()
    agent = "chart-agent"
    runs = [
        shifted(tool_loop_run("old", agent), now - 40 * 86400, "v0"),  # outside even 30 days
        shifted(healthy_run("weeks", agent), now - 20 * 86400, "v1"),
        shifted(healthy_run("days", agent), now - 3 * 86400, "v1"),
        shifted(tool_loop_run("hours", agent), now - 2 * 3600, "v2"),
        shifted(errored_run("minutes", agent), now - 600, "v2"),
        shifted(healthy_run("other", "other-agent"), now - 300, "v9"),
    ]
    for events in runs:
        assert (
            httpx.post(
                collector.url + "/v1/ingest", json={"api_key": "", "agent_id": agent, "events": events}
            ).status_code
            == 202
        )
    httpx.post(
        collector.url + "/v1/deploy", json={"api_key": "", "agent_id": agent, "version": "v2", "meta": {"sha": "abc"}}
    )
    assert collector.collector.judge.wait_idle(10)
    expected = {
        "1h": (60, ["minutes"]),
        "24h": (48, ["hours", "minutes"]),
        "7d": (56, ["days", "hours", "minutes"]),
        "30d": (60, ["weeks", "days", "hours", "minutes"]),
    }
    for range_name, (buckets, inside) in expected.items():
        chart = get(collector, f"/api/timeline?agent_id={agent}&range={range_name}")
        step = chart["bucket_seconds"]
        assert len(chart["buckets"]) == len(chart["runs"]) == len(chart["error_rate"]) == buckets
        assert chart["end"] - chart["start"] == buckets * step and chart["start"] <= now < chart["end"]
        assert chart["total_runs"] == sum(chart["runs"]) == len(inside)
        started = {r[0]["run_id"]: r[0]["timestamp"] for r in runs}
        for run_id in inside:
            i = int((started[run_id] - chart["start"]) // step)
            assert chart["runs"][i] >= 1
            if run_id == "minutes":
                assert chart["errored"][i] == 1 and chart["error_rate"][i] == 100.0 * 1 / chart["runs"][i]
        assert all(rate is None for rate, n in zip(chart["error_rate"], chart["runs"], strict=True) if n == 0)
        loops = chart["detectors"].get("TOOL_LOOP")
        if "hours" in inside:
            i = int((started["hours"] - chart["start"]) // step)
            assert loops is not None and loops[i] == 100.0 / chart["runs"][i]
        else:
            assert loops is None or not any(loops)
        deploys = [m for m in chart["markers"] if m["kind"] == "deploy"]
        assert [(m["version"], m["meta"]) for m in deploys] == [("v2", {"sha": "abc"})]
        versions = [(m["version"], m["meta"].get("previous")) for m in chart["markers"] if m["kind"] == "version"]
        # v1 after v0 (a run older than every window), then v2.
        changes = (("v1", "v0", "weeks"), ("v2", "v1", "hours"))
        assert versions == [(v, before) for v, before, run_id in changes if run_id in inside]
    everyone = get(collector, "/api/timeline?range=1h")
    assert everyone["total_runs"] == 2 and everyone["agent_id"] is None
    # Answers are kept while nothing new arrives; a deploy or a run is new.
    assert get(collector, "/api/timeline?range=1h") == everyone
    httpx.post(collector.url + "/v1/deploy", json={"api_key": "", "agent_id": "other-agent", "version": "v10"})
    markers = [m["version"] for m in get(collector, "/api/timeline?range=1h")["markers"]]
    assert markers == [m["version"] for m in everyone["markers"]] + ["v10"]
    more = shifted(healthy_run("late", "other-agent"), time.time() - 1, "v9")
    httpx.post(collector.url + "/v1/ingest", json={"api_key": "", "agent_id": "other-agent", "events": more})
    assert collector.collector.judge.wait_idle(10)
    assert get(collector, "/api/timeline?range=1h")["total_runs"] == 3


def test_signals_since_and_the_run_tree(collector: BackgroundServer) -> None:
    now = time.time()
    parent = shifted(tool_loop_run("parent", "crew"), now - 60)
    child = shifted(tool_loop_run("child", "crew.member"), now - 59, parent="parent")
    grandchild = shifted(healthy_run("grandchild", "crew.member.helper"), now - 58, parent="child")
    for events in (parent, child, grandchild):
        assert (
            httpx.post(
                collector.url + "/v1/ingest", json={"api_key": "", "agent_id": "crew", "events": events}
            ).status_code
            == 202
        )
    assert collector.collector.judge.wait_idle(10)
    detail = get(collector, "/api/runs/parent")
    assert [
        (c["run"]["run_id"], len(c["events"]), [s["detector"] for s in c["signals"]]) for c in detail["children"]
    ] == [("child", len(child), ["TOOL_LOOP"]), ("grandchild", len(grandchild), [])]
    assert get(collector, "/api/runs/grandchild")["children"] == []
    # A child that arrives later shows up under its parent at the next read.
    late = shifted(healthy_run("late-child", "crew.late"), now - 57, parent="parent")
    httpx.post(collector.url + "/v1/ingest", json={"api_key": "", "agent_id": "crew", "events": late})
    assert collector.collector.judge.wait_idle(10)
    assert [c["run"]["run_id"] for c in get(collector, "/api/runs/parent")["children"]] == [
        "child",
        "late-child",
        "grandchild",
    ]
    everything = get(collector, "/api/signals")
    assert everything["total"] == 2
    recent = get(collector, f"/api/signals?since={now - 3600:.0f}&limit=1")
    assert recent["total"] == 2 and len(recent["items"]) == 1 and recent["next_offset"] == 1
    assert get(collector, f"/api/signals?since={now - 3600:.0f}&limit=1&offset=1")["items"] == everything["items"][1:]
    assert get(collector, f"/api/signals?since={time.time() + 5:.0f}")["total"] == 0
    assert get(collector, f"/api/signals?since={now - 3600:.0f}&agent_id=crew.member")["total"] == 1


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    """One collector for every example hypothesis tries."""
    server = BackgroundServer(Settings(db_path=str(tmp_path_factory.mktemp("values") / "v.db"))).start()
    yield server
    server.stop()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    raw=st.one_of(
        st.sampled_from(["1h", "24h", "7d", "30d", "1H", " 1h", "", "0", "1e11", "1e12", "-1", "nan"]),
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
    )
)
def test_range_and_since_refuse_what_they_cannot_read(shared: BackgroundServer, raw: str) -> None:
    timeline = httpx.get(shared.url + "/api/timeline", params={"range": raw}, timeout=10)
    assert timeline.status_code == (200 if raw in ("1h", "24h", "7d", "30d") else 422), timeline.text
    if timeline.status_code == 422:
        assert timeline.json()["field"] == "range"
    signals = httpx.get(shared.url + "/api/signals", params={"since": raw}, timeout=10)
    try:
        readable = 0 <= float(raw) <= 1e11
    except ValueError:
        readable = False
    assert signals.status_code == (200 if readable else 422), (raw, signals.text)
