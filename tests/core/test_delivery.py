"""Delivery against a real HTTP server on 127.0.0.1: batching, retries,
ordering, the bound, and the contract's status codes."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def emit_run(client: Dunetrace, agent: str, tools: int) -> str:
    with client.run(agent) as run:
        for i in range(tools):
            step = run.tool_called("search", {"i": i})
            run.tool_responded("search", True, step=step)
    return run.run_id


def assert_runs_in_order(events: list[dict]) -> None:
    """Within each run: started first, steps never go back, terminal last."""
    by_run: dict[str, list[dict]] = {}
    for e in events:
        by_run.setdefault(e["run_id"], []).append(e)
    for run_events in by_run.values():
        assert run_events[0]["event_type"] == "run.started"
        assert run_events[-1]["event_type"] in ("run.completed", "run.errored")
        steps = [e["step_index"] for e in run_events]
        assert steps == sorted(steps)


def test_batches_respect_max_batch_size_and_agent(ingest: IngestServer) -> None:
    client = Dunetrace(endpoint=ingest.url, max_batch_size=7)
    emit_run(client, "a", 10)
    emit_run(client, "b", 3)
    assert client.shutdown(5)
    batches = ingest.batches
    assert all(1 <= len(b["events"]) <= 7 for b in batches)
    assert all({e["agent_id"] for e in b["events"]} == {b["agent_id"]} for b in batches)
    assert sum(len(b["events"]) for b in batches) == 22 + 8
    assert_runs_in_order(ingest.events)
    assert client.stats()["sent"] == 30


def test_final_drain_of_a_large_backlog_never_exceeds_the_batch_limit(ingest: IngestServer) -> None:
    client = Dunetrace(endpoint=ingest.url, flush_interval=30)  # nothing drains before shutdown
    with client.run("a") as run:
        for _ in range(2_000):
            run.llm_called("m")
    assert client.shutdown(10)
    sizes = [len(b["events"]) for b in ingest.batches]
    assert sum(sizes) == 2_002 and max(sizes) <= client.options.max_batch_size == 500


def test_a_backlog_of_interleaved_agents_still_goes_out_in_full_batches(ingest: IngestServer) -> None:
    # The drain takes a bounded amount ahead of each request; with four
    # agents interleaved, that must not shrink the batches it sends.
    client = Dunetrace(endpoint=ingest.url, flush_interval=30)  # nothing drains before shutdown
    runs = [client.run(f"agent-{i}").start() for i in range(4)]
    for n in range(1_000):
        runs[n % 4].llm_called("m")
    for run in runs:
        run.finish()
    assert client.shutdown(10)
    per_agent: dict[str, list[int]] = {}
    for batch in ingest.batches:
        per_agent.setdefault(batch["agent_id"], []).append(len(batch["events"]))
    # Per agent 252 events: 100 + 100 + 52, or fewer, larger batches where
    # the backlog made them grow (a request came back with a batch's worth
    # still queued); never a short batch but the last.
    assert sorted(per_agent) == [f"agent-{i}" for i in range(4)]
    for sizes in per_agent.values():
        assert sum(sizes) == 252 and len(sizes) <= 3, sizes
        assert all(size >= 100 for size in sizes[:-1]), sizes


def test_5xx_and_resets_are_retried_in_order(ingest: IngestServer) -> None:
    ingest.script.extend([(503, {}), (0, {}), (500, {})])
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.02, initial_backoff=0.05, max_batch_size=5)
    ids = [emit_run(client, "a", 4) for _ in range(3)]
    assert client.flush(10)
    events = ingest.events
    assert [e["run_id"] for e in events if e["event_type"] == "run.started"] == ids
    assert len(events) == 30 and len({e["event_id"] for e in events}) == 30
    assert_runs_in_order(events)
    stats = client.stats()
    assert stats["retries"] == 3 and stats["sent"] == 30 and stats["dropped_total"] == 0
    client.shutdown(1)


def test_a_timed_out_request_is_retried(ingest: IngestServer) -> None:
    ingest.script.append((-1, {"delay": "1.0"}))
    client = Dunetrace(endpoint=ingest.url, request_timeout=0.2, flush_interval=0.02, initial_backoff=0.05)
    emit_run(client, "a", 1)
    assert client.flush(10)
    assert [e["event_type"] for e in ingest.events] == ["run.started", "tool.called", "tool.responded", "run.completed"]
    assert client.stats()["retries"] == 1 and client.stats()["sent"] == 4
    client.shutdown(1)


def test_retry_never_lets_a_terminal_event_overtake(ingest: IngestServer) -> None:
    # The first batch (run.started + tools) fails; the next batch holds run.completed.
    ingest.script.append((502, {}))
    client = Dunetrace(endpoint=ingest.url, max_batch_size=3, flush_interval=0.02, initial_backoff=0.05)
    emit_run(client, "a", 3)
    assert client.flush(10)
    types = [e["event_type"] for e in ingest.events]
    assert types[0] == "run.started" and types[-1] == "run.completed" and len(types) == 8
    client.shutdown(1)


def test_429_honours_retry_after(ingest: IngestServer) -> None:
    ingest.script.append((429, {"Retry-After": "1"}))
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.02, initial_backoff=0.01)
    start = time.monotonic()
    emit_run(client, "a", 1)
    assert client.flush(10)
    attempts = [t for path, _, _ in ingest.requests if path == "/v1/ingest" for t in [time.monotonic()]]
    assert len(attempts) == 2
    assert time.monotonic() - start >= 1.0  # waited the second the server asked for, not 10 ms
    client.shutdown(1)


def test_connection_refused_then_server_comes_up(caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    client = Dunetrace(endpoint=f"http://127.0.0.1:{port}", flush_interval=0.02, initial_backoff=0.05, max_backoff=0.2)
    with caplog.at_level(logging.WARNING, logger="dunetrace"):
        emit_run(client, "a", 2)
        time.sleep(0.4)
        assert client.stats()["retries"] >= 1 and client.stats()["sent"] == 0
        server = IngestServer(port=port)
        try:
            assert client.flush(10)
            assert len(server.events) == 6
            assert_runs_in_order(server.events)
        finally:
            server.close()
            client.shutdown(1)
    assert "delivery failed (connection error" in caplog.text


def test_401_stops_sending_and_says_so_once(ingest: IngestServer, caplog: pytest.LogCaptureFixture) -> None:
    ingest.script.extend([(401, {})] * 3)
    client = Dunetrace(endpoint=ingest.url, api_key="wrong", flush_interval=0.02)
    with caplog.at_level(logging.ERROR, logger="dunetrace"):
        emit_run(client, "a", 1)
        client.flush(5)
        emit_run(client, "a", 1)
        client.flush(5)
    assert len(ingest.requests) == 1  # nothing sent after the 401
    assert ingest.requests[0][1]["authorization"] == "Bearer wrong"
    assert client.stats()["dropped"] == {"unauthorized": 8}
    assert caplog.text.count("rejected the API key") == 1
    assert "DUNETRACE_API_KEY" in caplog.text
    client.shutdown(1)


def test_full_queue_drops_newest_counts_and_the_run_end_carries_the_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nothing listens: everything stays queued
    client = Dunetrace(endpoint=f"http://127.0.0.1:{port}", max_queue_size=50, terminal_reserve=5, initial_backoff=5)
    with caplog.at_level(logging.WARNING, logger="dunetrace"), client.run("a") as run:
        for _ in range(100):
            run.llm_called("m")
    stats = client.stats()
    assert stats["dropped"] == {"queue_full": 51}  # 101 emitted (run.started + 100), 50 kept
    assert stats["queued"] == 51  # the bound, plus run.completed from the reserve
    assert run.dropped_events == 51
    assert "queue full" in caplog.text
    server = IngestServer(port=port)
    try:
        # the drain thread is backing off; new client state is not needed, just time
        client._buffer._retry_at = 0.0
        assert client.flush(10)
        last = server.events[-1]
        assert last["event_type"] == "run.completed" and last["payload"]["dropped_events"] == 51
    finally:
        server.close()
        client.shutdown(1)


def test_memory_is_bounded_however_long_the_run() -> None:
    import tracemalloc

    port = free_port()
    client = Dunetrace(endpoint=f"http://127.0.0.1:{port}", max_queue_size=1_000, initial_backoff=5)
    run = client.run("a").start()
    tracemalloc.start()
    for _ in range(5_000):
        run.tool_called("t", {"q": 1})
    first, _ = tracemalloc.get_traced_memory()
    for _ in range(25_000):
        run.tool_called("t", {"q": 1})
    second, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert client.stats()["queued"] <= 1_000
    assert second - first < 200_000  # 5x the events, no growth beyond noise
    client.shutdown(0.1)


def test_caller_never_blocks_on_a_server_that_hangs() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepts, never answers
    port = listener.getsockname()[1]
    client = Dunetrace(endpoint=f"http://127.0.0.1:{port}", request_timeout=5, flush_interval=0.01)
    try:
        emit_run(client, "a", 1)
        time.sleep(0.1)  # the drain thread is now stuck in a request
        start = time.perf_counter()
        emit_run(client, "a", 200)
        elapsed = time.perf_counter() - start
        assert elapsed < 0.5, elapsed  # 802 events; the network holds none of them up
        t0 = time.monotonic()
        assert client.shutdown(timeout=0.3) is False  # bounded, and honest that events remain
        assert time.monotonic() - t0 < 2
    finally:
        listener.close()


def test_events_after_shutdown_are_counted(ingest: IngestServer) -> None:
    client = Dunetrace(endpoint=ingest.url)
    client.shutdown(1)
    with client.run("a"):
        pass
    assert client.stats()["dropped"] == {"shutdown": 2}
    assert client.shutdown(1) is True


def test_events_after_shutdown_of_a_client_that_was_sending_are_counted(ingest: IngestServer) -> None:
    client = Dunetrace(endpoint=ingest.url)
    with client.run("a"):
        pass
    assert client.shutdown(5)
    with client.run("a") as run:  # the drain thread has stopped: nothing would send these
        run.tool_called("search", {"q": 1})
    stats = client.stats()
    assert stats["dropped"] == {"shutdown": 3} and stats["queued"] == 0 and stats["sent"] == 2


def test_keep_alive_one_connection_for_many_batches(ingest: IngestServer) -> None:
    client = Dunetrace(endpoint=ingest.url, max_batch_size=10)
    emit_run(client, "a", 50)
    client.shutdown(5)
    assert len(ingest.requests) >= 10
    # ThreadingHTTPServer serves each connection on its own thread; one
    # keep-alive connection means one thread served every request.
    assert len(ingest.connection_threads) == 1


def test_the_drain_builds_each_event_as_run_wire_event_does() -> None:
    # The drain inlines Run.wire_event for speed; the two must not drift.
    client = Dunetrace(export="none", flush_interval=3600)
    run = client.run("a", parent_run_id="p-1", model="m")
    payload = {"tool_name": "t", "success": True}
    client._buffer.queue.append((run, "tool.responded", 3, 12.5, payload))
    client._buffer._take()
    event = client._buffer._pending[-1].events[-1]
    expected = run.wire_event("tool.responded", 3, 12.5, payload)
    assert list(event) == [*expected, "event_id"]
    assert {k: v for k, v in event.items() if k != "event_id"} == expected
    client.shutdown(0.1)


def test_an_environment_proxy_carries_the_batches(ingest: IngestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # The test server stands in for the proxy: a proxied request names the
    # whole target URL on its request line.
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", ingest.url)
    client = Dunetrace(endpoint="http://ingest.invalid:8001", api_key="k-1")
    emit_run(client, "a", 2)
    client.shutdown(5)
    paths = {path for path, _, _ in ingest.requests}
    assert paths == {"http://ingest.invalid:8001/v1/ingest"}
    _, headers, _ = ingest.requests[0]
    assert headers["authorization"] == "Bearer k-1"
    assert headers["content-type"] == "application/json"


def test_deploy_marker_is_fire_and_forget(ingest: IngestServer) -> None:
    client = Dunetrace(endpoint=ingest.url, api_key="k")
    start = time.perf_counter()
    client.mark_deploy("agent-a", "1.2.3", git_sha="abc")
    assert time.perf_counter() - start < 0.05
    client.mark_deploy("", "1")  # ignored with a warning, never raises
    assert client.flush(5)
    client.shutdown(1)
    assert ingest.deploys == [{"api_key": "k", "agent_id": "agent-a", "version": "1.2.3", "meta": {"git_sha": "abc"}}]


def test_deploy_marker_to_a_dead_backend_never_raises() -> None:
    client = Dunetrace(endpoint=f"http://127.0.0.1:{free_port()}")
    client.mark_deploy("agent-a", "1")
    client.flush(2)
    client.shutdown(1)


def test_many_threads_share_one_client(ingest: IngestServer) -> None:
    client = Dunetrace(endpoint=ingest.url)
    threads = [threading.Thread(target=emit_run, args=(client, f"agent-{i % 3}", 20)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert client.shutdown(10)
    events = ingest.events
    assert len(events) == 16 * 42
    assert_runs_in_order(events)
    assert len({e["event_id"] for e in events}) == len(events)


def test_after_a_429_requests_are_paced_and_batches_fill(ingest: IngestServer) -> None:
    """The ingest API allows 60 requests a minute and sends no Retry-After:
    after a 429 the client leaves a gap between requests instead of posting
    every 200 ms, and what arrives meanwhile goes out in fuller batches."""
    ingest.script.append((429, {}))
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.02, initial_backoff=0.05)
    emit_run(client, "a", 1)
    assert client.flush(10)
    assert client._buffer._window.active(time.monotonic())
    first_ok = len(ingest.requests)
    start = time.monotonic()
    for _ in range(15):  # a trickle: one small run every 50 ms for 0.75 s
        emit_run(client, "a", 1)
        time.sleep(0.05)
    assert client.flush(10)
    elapsed = time.monotonic() - start
    requests = len(ingest.requests) - first_ok
    assert len(ingest.events) == 16 * 4
    assert requests <= elapsed / 0.9 + 1  # one request a gap, not one per 20 ms drain
    assert_runs_in_order(ingest.events)
    client.shutdown(1)


def test_a_fast_receiver_gets_full_batches_not_a_stream_of_small_ones(ingest: IngestServer) -> None:
    """Events arriving while a request is out wait for the next tick (or a
    full batch): a steady trickle makes a few requests, not one per event."""
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.2, max_batch_size=100)
    run = client.run("a").start()
    deadline = time.monotonic() + 1.0
    emitted = 1
    while time.monotonic() < deadline:  # ~1,000 events a second for a second
        run.tool_called("t")
        emitted += 1
        time.sleep(0.001)
    run.finish()
    assert client.flush(5)
    requests = len(ingest.requests)
    assert len(ingest.events) == emitted + 1
    assert requests <= emitted / 50  # about one request a tick or a full batch
    client.shutdown(1)
