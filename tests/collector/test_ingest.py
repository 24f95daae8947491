"""POST /v1/ingest, /v1/deploy and /health against a real collector on
127.0.0.1: each row of the contract's status table."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from dunetrace.collector.server import BackgroundServer
from dunetrace.collector.settings import Settings

from .wire import batch, event, tool_loop_run

# One client: building an httpx client costs ~0.1 s (its SSL context).
http = httpx.Client(timeout=10)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    """One collector for the many requests that must store nothing."""
    server = BackgroundServer(Settings(db_path=str(tmp_path_factory.mktemp("shared") / "c.db"))).start()
    yield server
    server.stop()


def post(server: BackgroundServer, body: Any, path: str = "/v1/ingest", **kwargs: Any) -> httpx.Response:
    if isinstance(body, (bytes, str)):
        # The collector takes only JSON bodies (access.py), as the SDK sends them.
        headers = {"content-type": "application/json", **kwargs.pop("headers", {})}
        return http.post(server.url + path, content=body, headers=headers, **kwargs)
    return http.post(server.url + path, json=body, **kwargs)


def stored(server: BackgroundServer, sql: str = "SELECT count(*) FROM events") -> Any:
    # A connection of its own to the file: what is there for anyone to read.
    with sqlite3.connect(server.settings.db_path) as db:
        return db.execute(sql).fetchone()[0]


def test_202_after_the_batch_is_on_disk(collector: BackgroundServer) -> None:
    events = [event("run.started", "r1", 0, tools=["search"]), event("llm.called", "r1", 1, model="m")]
    response = post(collector, batch(events))
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 2
    assert isinstance(body["batch_id"], str) and body["batch_id"]
    assert isinstance(body["queued_at"], float)
    assert stored(collector) == 2
    assert stored(collector, "PRAGMA journal_mode") == "wal"


def test_resent_events_are_stored_once(collector: BackgroundServer) -> None:
    events = [event("run.started", "r1", 0), event("llm.called", "r1", 1)]
    assert post(collector, batch(events)).status_code == 202
    assert post(collector, batch(events)).status_code == 202  # a retry after a lost 202
    assert stored(collector) == 2
    assert stored(collector, "SELECT event_count FROM runs WHERE run_id = 'r1'") == 2


def test_events_without_event_id_are_all_kept(collector: BackgroundServer) -> None:
    events = [event("run.started", "r1", 0), event("llm.called", "r1", 1)]
    for e in events:
        del e["event_id"]
    post(collector, batch(events))
    post(collector, batch(events))
    assert stored(collector) == 4


def test_a_terminal_event_gets_the_run_judged_and_late_events_are_ignored(collector: BackgroundServer) -> None:
    assert post(collector, batch(tool_loop_run("r1"))).status_code == 202
    assert collector.collector.judge.wait_idle(5)
    assert stored(collector, "SELECT status FROM runs WHERE run_id = 'r1'") == "judged"
    assert stored(collector, "SELECT detector FROM signals WHERE run_id = 'r1'") == "TOOL_LOOP"
    before = stored(collector)
    late = event("tool.called", "r1", 9, tool_name="search")
    assert post(collector, batch([late])).status_code == 202
    assert stored(collector) == before
    assert stored(collector, "SELECT count(*) FROM signals") == 1


def test_500_events_pass_and_501_are_refused(collector: BackgroundServer) -> None:
    events = [event("run.started", "big", 0)] + [event("llm.called", "big", i) for i in range(1, 500)]
    assert post(collector, batch(events)).status_code == 202
    response = post(collector, batch([*events, event("llm.called", "big", 500)]))
    assert response.status_code == 422
    assert response.json()["field"] == "events"


def _without(key: str) -> dict[str, Any]:
    e = event("llm.called")
    del e[key]
    return e


BAD: list[tuple[str, Any, str]] = [
    ("unknown event_type", batch([event("llm.thought")]), "events[0].event_type"),
    ("empty events", batch([]), "events"),
    ("no events", {"api_key": "", "agent_id": "a"}, "events"),
    ("events not a list", {"events": {"a": 1}}, "events"),
    ("event not an object", batch(["x"]), "events[0]"),  # type: ignore[list-item]
    ("empty run_id", batch([event("llm.called", run_id="")]), "events[0].run_id"),
    ("missing agent_version", batch([_without("agent_version")]), "events[0].agent_version"),
    ("negative step_index", batch([event("llm.called", step=-1)]), "events[0].step_index"),
    ("string step_index", batch([{**event("llm.called"), "step_index": "1"}]), "events[0].step_index"),
    ("bool step_index", batch([{**event("llm.called"), "step_index": True}]), "events[0].step_index"),
    ("payload not an object", batch([{**event("llm.called"), "payload": []}]), "events[0].payload"),
    ("timestamp a string", batch([{**event("llm.called"), "timestamp": "now"}]), "events[0].timestamp"),
    ("event_type not a string", batch([{**event("llm.called"), "event_type": {}}]), "events[0].event_type"),
    ("empty parent_run_id", batch([{**event("llm.called"), "parent_run_id": ""}]), "events[0].parent_run_id"),
    ("second event bad", batch([event("llm.called"), event("nope")]), "events[1].event_type"),
    ("api_key not a string", {**batch([event("llm.called")]), "api_key": 5}, "api_key"),
    ("body a list", [1, 2], "body"),
]


@pytest.mark.parametrize("name, body, field", BAD, ids=[b[0] for b in BAD])
def test_422_names_the_bad_field(shared: BackgroundServer, name: str, body: Any, field: str) -> None:
    response = post(shared, body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert field in response.json()["detail"]
    assert stored(shared) == 0


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b'{"events": [', b'{"events": [NaN]}', b"\xff\xfe", b'{"a": 1e999}'],
    ids=["empty", "text", "truncated", "nan", "not utf-8", "infinity"],
)
def test_non_json_body_is_422(shared: BackgroundServer, raw: bytes) -> None:
    response = post(shared, raw, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["field"] == "body"


def test_lone_surrogate_is_422_not_500(shared: BackgroundServer) -> None:
    raw = json.dumps(batch([event("llm.called", run_id="\ud800")])).encode()
    assert post(shared, raw).status_code == 422
    assert stored(shared) == 0


def test_a_payload_too_deep_to_store_is_422_not_500(shared: BackgroundServer) -> None:
    deep: dict[str, Any] = {"leaf": 1}
    for _ in range(300):  # parses (JSON allows it), but orjson writes at most 254 levels
        deep = {"next": deep}
    response = post(shared, json.dumps(batch([event("llm.called", nested=deep)])).encode())
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "events"
    assert stored(shared) == 0


def test_an_integer_past_64_bits_in_a_payload_is_stored(collector: BackgroundServer) -> None:
    """msgspec reads it as an int, which orjson cannot write: the batch takes
    the standard parse instead, which reads it as a float, as before."""
    raw = json.dumps(batch([event("llm.called", "big-int", 1, tokens=10**30)])).encode()
    response = post(collector, raw)
    assert response.status_code == 202, response.text
    assert stored(collector, "SELECT json_extract(payload, '$.tokens') FROM events") == 1e30


def test_413_over_the_body_limit(start_collector: Callable[..., BackgroundServer]) -> None:
    server = start_collector(max_body_bytes=4096)
    events = [event("llm.called", "r", i, model="m" * 50) for i in range(100)]
    response = post(server, batch(events))
    assert response.status_code == 413
    assert stored(server) == 0

    def chunks() -> Any:  # no content-length: the limit holds while reading
        yield json.dumps(batch(events)).encode()

    json_body = {"content-type": "application/json"}
    assert http.post(server.url + "/v1/ingest", content=chunks(), headers=json_body).status_code == 413
    assert post(server, batch(events[:3])).status_code == 202


def test_keys_configured_wrong_key_is_401(start_collector: Callable[..., BackgroundServer]) -> None:
    server = start_collector(api_keys=frozenset({"dt_live_good"}))
    body = batch([event("run.started")], api_key="dt_live_bad")
    assert post(server, body).status_code == 401
    assert post(server, batch([event("run.started")])).status_code == 401  # no key at all
    assert post(server, {"api_key": "dt_live_bad", "agent_id": "a", "version": "2"}, "/v1/deploy").status_code == 401
    assert stored(server) == 0
    assert post(server, batch([event("run.started")], api_key="dt_live_good")).status_code == 202
    # The key may also come as a bearer token when the body has none.
    response = post(server, batch([event("llm.called", step=1)]), headers={"authorization": "Bearer dt_live_good"})
    assert response.status_code == 202
    assert stored(server) == 2


def test_dev_mode_accepts_any_key(collector: BackgroundServer) -> None:
    assert post(collector, batch([event("run.started")], api_key="anything")).status_code == 202


def test_deploy_markers(collector: BackgroundServer) -> None:
    response = post(
        collector, {"api_key": "", "agent_id": "agent-a", "version": "v2", "meta": {"sha": "abc"}}, "/v1/deploy"
    )
    assert response.status_code == 202
    assert post(collector, {"agent_id": "agent-a"}, "/v1/deploy").json()["field"] == "version"
    assert post(collector, {"agent_id": "a", "version": "1", "meta": []}, "/v1/deploy").json()["field"] == "meta"
    listed = http.get(collector.url + "/api/deploys?agent_id=agent-a").json()
    assert [(d["version"], d["meta"]) for d in listed["items"]] == [("v2", {"sha": "abc"})]


def test_health(collector: BackgroundServer) -> None:
    from dunetrace import __version__

    response = http.get(collector.url + "/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__, "db": "ok"}


def test_wrong_method_and_unknown_path_are_4xx(collector: BackgroundServer) -> None:
    assert http.get(collector.url + "/v1/ingest").status_code == 405
    assert http.get(collector.url + "/v2/nothing").status_code == 404
