"""The real SDK against the real collector (uvicorn on 127.0.0.1): runs are
stored, judged, and read back through the JSON API."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from dunetrace import Dunetrace
from dunetrace.collector.server import BackgroundServer
from dunetrace.collector.store import Store

from .wire import tool_loop_run

http = httpx.Client(timeout=10)


def api(server: BackgroundServer, path: str, status: int = 200) -> Any:
    response = http.get(server.url + path)
    assert response.status_code == status, response.text
    return response.json()


def wait_until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def looping_run(dt: Dunetrace, agent: str = "agent-a", calls: int = 4) -> str:
    @dt.tool
    def search(query: str) -> str:
        return "nothing found"

    with dt.run(agent, user_input="find it", tools=["search"], model="m") as run:
        for _ in range(calls):
            step = run.llm_called("m", prompt_tokens=10)
            run.llm_responded(5, 1.0, "tool_calls", 10, step=step)
            search("same query")
        run.final_answer()
    return run.run_id


def healthy_run(dt: Dunetrace, agent: str = "agent-a") -> str:
    with dt.run(agent, user_input="hi", model="m") as run:
        step = run.llm_called("m", prompt_tokens=10)
        run.llm_responded(5, 1.0, "stop", 12, step=step)
        run.final_answer()
    return run.run_id


def test_a_tool_loop_is_stored_judged_and_shown(collector: BackgroundServer, sdk: Dunetrace) -> None:
    run_id = looping_run(sdk)
    assert sdk.flush(5)
    detail = wait_until(lambda: (d := api(collector, f"/api/runs/{run_id}"))["run"]["status"] == "judged" and d)
    assert detail["run"]["agent_id"] == "agent-a"
    assert detail["run"]["end_type"] == "run.completed"
    assert detail["run"]["exit_reason"] == "final_answer"
    assert detail["run"]["event_count"] == len(detail["events"]) == sdk.stats()["sent"]
    kinds = [e["event_type"] for e in detail["events"]]
    assert kinds[0] == "run.started" and kinds[-1] == "run.completed"
    assert kinds.count("tool.called") == 4
    [signal] = [s for s in detail["signals"] if s["detector"] == "TOOL_LOOP"]
    assert signal["severity"] == "HIGH"
    assert signal["evidence"]
    assert set(signal["explanation"]) >= {"what", "why", "try"}
    assert all(signal["explanation"][k] for k in ("what", "why", "try"))


def test_a_silent_run_is_judged_after_the_timeout(start_collector: Callable[..., BackgroundServer]) -> None:
    server = start_collector(run_timeout=0.6, sweep_interval=0.1)
    dt = Dunetrace(endpoint=server.url, flush_interval=0.05)
    try:
        run = dt.run("agent-a", tools=["search"]).start()
        for _ in range(3):
            step = run.tool_called("search", {"q": 1})
            run.tool_responded("search", True, step=step)
        assert dt.flush(5)
        started = time.monotonic()
        assert api(server, f"/api/runs/{run.run_id}")["run"]["status"] == "open"
        detail = wait_until(lambda: (d := api(server, f"/api/runs/{run.run_id}"))["run"]["status"] == "judged" and d)
        assert time.monotonic() - started >= 0.3  # not before the silence
        assert detail["run"]["end_type"] is None
        assert [s["detector"] for s in detail["signals"]] == ["TOOL_LOOP"]
    finally:
        dt.shutdown(5)


def test_an_errored_run(collector: BackgroundServer, sdk: Dunetrace) -> None:
    with pytest.raises(KeyError), sdk.run("agent-a") as run:
        raise KeyError("secret")
    assert sdk.flush(5)
    detail = wait_until(lambda: (d := api(collector, f"/api/runs/{run.run_id}"))["run"]["status"] == "judged" and d)
    assert detail["run"]["end_type"] == "run.errored"
    assert detail["run"]["error_type"] == "KeyError"


def test_the_json_api_lists_filters_and_pages(collector: BackgroundServer, sdk: Dunetrace) -> None:
    loops = [looping_run(sdk) for _ in range(3)]
    fine = [healthy_run(sdk) for _ in range(2)]
    other = healthy_run(sdk, agent="agent-b")
    sdk.mark_deploy("agent-a", "v2", git_sha="abc123")
    assert sdk.flush(5)
    wait_until(lambda: api(collector, "/api/runs?limit=10")["total"] == 6)
    wait_until(lambda: all(r["status"] == "judged" for r in api(collector, "/api/runs?limit=10")["items"]))

    agents = {a["agent_id"]: a for a in api(collector, "/api/agents")["items"]}
    assert agents["agent-a"]["runs"] == 5 and agents["agent-a"]["signals"] >= 3
    assert agents["agent-b"]["runs"] == 1 and agents["agent-b"]["signals"] == 0

    flagged = api(collector, "/api/agents/agent-a/runs?with_signals=true")
    assert {r["run_id"] for r in flagged["items"]} == set(loops)
    clean = api(collector, "/api/agents/agent-a/runs?with_signals=false")
    assert {r["run_id"] for r in clean["items"]} == set(fine)
    assert [r["run_id"] for r in api(collector, "/api/agents/agent-b/runs")["items"]] == [other]

    first = api(collector, "/api/agents/agent-a/runs?limit=2")
    assert first["total"] == 5 and len(first["items"]) == 2 and first["next_offset"] == 2
    second = api(collector, "/api/agents/agent-a/runs?limit=2&offset=2")
    last = api(collector, "/api/agents/agent-a/runs?limit=2&offset=4")
    assert last["next_offset"] is None and len(last["items"]) == 1
    seen = [r["run_id"] for page in (first, second, last) for r in page["items"]]
    assert sorted(seen) == sorted(loops + fine)

    loops_found = api(collector, "/api/agents/agent-a/signals?detector=TOOL_LOOP&severity=HIGH")
    assert {s["run_id"] for s in loops_found["items"]} == set(loops)
    assert api(collector, "/api/agents/agent-a/signals?type=tool_loop")["total"] == 3
    assert api(collector, "/api/agents/agent-a/signals?severity=LOW")["total"] == 0
    assert api(collector, "/api/agents/agent-b/signals")["total"] == 0
    assert api(collector, "/api/signals?detector=TOOL_LOOP")["total"] == 3

    deploys = wait_until(lambda: api(collector, "/api/deploys?agent_id=agent-a")["items"])
    assert [(d["version"], d["meta"]) for d in deploys] == [("v2", {"git_sha": "abc123"})]

    api(collector, "/api/runs/no-such-run", 404)
    assert api(collector, "/api/runs?limit=0", 422)["field"] == "limit"
    assert api(collector, "/api/signals?severity=BAD", 422)["field"] == "severity"
    assert api(collector, "/api/runs?with_signals=maybe", 422)["field"] == "with_signals"


def test_threads_sharing_one_client_keep_their_runs_apart(collector: BackgroundServer, sdk: Dunetrace) -> None:
    run_ids: list[str] = []
    lock = threading.Lock()

    def agent(n: int) -> None:
        for _ in range(5):
            with sdk.run(f"agent-{n % 2}") as run:
                for i in range(n + 1):
                    step = run.tool_called("t", {"i": i})
                    run.tool_responded("t", True, step=step)
            with lock:
                run_ids.append(run.run_id)

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sdk.flush(10)
    store = collector.collector.store
    for run_id in run_ids:
        events = store.run_events(run_id)
        tools = sum(e["event_type"] == "tool.called" for e in events)
        assert events[0]["event_type"] == "run.started" and events[-1]["event_type"] == "run.completed"
        assert len(events) == 2 + 2 * tools and tools >= 1
    assert store.count_events() == sdk.stats()["sent"]


def test_runs_left_unjudged_by_a_restart_are_judged_at_start(
    start_collector: Callable[..., BackgroundServer], tmp_path: Any
) -> None:
    path = str(tmp_path / "restart.db")
    store = Store(path)  # a collector that stored the batch, then died before judging it
    store.ingest(tool_loop_run("r-before-restart"), "b1")
    store.close()
    server = start_collector(db_path=path)
    detail = wait_until(lambda: (d := api(server, "/api/runs/r-before-restart"))["run"]["status"] == "judged" and d)
    assert [s["detector"] for s in detail["signals"]] == ["TOOL_LOOP"]


def test_detectors_yml_tunes_one_agent(start_collector: Callable[..., BackgroundServer], tmp_path: Any) -> None:
    config = tmp_path / "detectors.yml"
    config.write_text(
        "default:\n  tool_loop:\n    threshold: 3\nagents:\n  pager:\n    tool_loop:\n      threshold: 5\n"
    )
    server = start_collector(detectors_path=str(config))
    dt = Dunetrace(endpoint=server.url, flush_interval=0.05)
    try:
        paging = looping_run(dt, agent="pager", calls=4)  # 4 < 5: normal for this agent
        looping = looping_run(dt, agent="agent-a", calls=4)
        assert dt.flush(5)
    finally:
        dt.shutdown(5)
    assert server.collector.judge.wait_idle(5)
    store = server.collector.store
    assert store.run(paging)["status"] == store.run(looping)["status"] == "judged"
    assert [s["detector"] for s in store.signals(run_id=paging)[0]] == []
    assert [s["detector"] for s in store.signals(run_id=looping)[0]] == ["TOOL_LOOP"]
