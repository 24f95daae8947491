"""429s against a real HTTP server on 127.0.0.1 that limits requests the
way the upstream ingest service does (60 a minute per client, a sliding
window of the requests it let through, no Retry-After), and one that sends
Retry-After."""

from __future__ import annotations

import time

from dunetrace import Dunetrace
from tests.core.test_delivery import assert_runs_in_order, emit_run
from tests.ingest_server import IngestServer, SlidingWindow


def emit_backlog(client: Dunetrace) -> list[str]:
    """10,000 events at once: 98 runs of 102 events and one of 4."""
    ids = [emit_run(client, "agent", 50) for _ in range(98)]
    ids.append(emit_run(client, "agent", 1))
    return ids


def test_a_backlog_of_10000_drains_within_the_limit(ingest: IngestServer) -> None:
    ingest.limiter = SlidingWindow()  # 60 a minute, as upstream
    client = Dunetrace(endpoint=ingest.url)
    start = time.monotonic()
    ids = emit_backlog(client)
    assert client.flush(60)
    assert time.monotonic() - start < 10
    events = ingest.events
    assert len(events) == 10_000 and [e["run_id"] for e in events if e["event_type"] == "run.started"] == ids
    assert not ingest.limiter.refused  # batches grew: far fewer than 60 requests
    assert client.stats()["dropped_total"] == 0
    client.shutdown(1)


def test_after_a_429_a_backlog_of_10000_drains_in_under_a_minute(ingest: IngestServer) -> None:
    """A quiet agent spends the minute's 60 requests in 12 s (a small batch
    every 200 ms) and meets a 429; then 10,000 events arrive. Its oldest
    request leaves the server's window at ~60 s, and from then on one more
    as each earlier one does, 200 ms apart: full batches of 500 go in those
    slots, 20 requests in about 4 s, instead of one a second."""
    limiter = ingest.limiter = SlidingWindow()
    client = Dunetrace(endpoint=ingest.url)  # default settings
    start = time.monotonic()
    trickled = 0
    while not limiter.refused:
        emit_run(client, "agent", 1)
        trickled += 4
        time.sleep(0.05)
        assert time.monotonic() - start < 30, "the trickle never met the limit"
    assert len(limiter.allowed) == 60
    backlog_at = time.monotonic()
    ids = emit_backlog(client)
    total = trickled + 10_000
    assert ingest.wait_for(lambda events: len(events) >= total, timeout=75)
    drained = time.monotonic() - backlog_at
    print(f"\n10,000 events after a 429: drained in {drained:.1f} s; 429s: {len(limiter.refused)}")
    assert drained < 60, drained
    events = ingest.events
    assert len(events) == total and len({e["event_id"] for e in events}) == total
    assert [e["run_id"] for e in events if e["event_type"] == "run.started"][-99:] == ids
    assert_runs_in_order(events)
    assert client.stats()["dropped_total"] == 0
    # The client waited for the window instead of probing it, and filled
    # every request it spent on the backlog.
    assert len(limiter.refused) <= 2, limiter.refused
    after = [len(b["events"]) for b in ingest.batches][60:]
    assert sum(after) == total - sum(len(b["events"]) for b in ingest.batches[:60])
    assert len(after) <= 10_000 // 500 + 1, after
    client.shutdown(1)


def test_retry_after_is_obeyed(ingest: IngestServer) -> None:
    limiter = ingest.limiter = SlidingWindow(limit=8, window=2.0, retry_after=True)
    client = Dunetrace(endpoint=ingest.url)
    deadline = time.monotonic() + 5
    runs = 0
    while time.monotonic() < deadline:  # a small batch every 200 ms: over the limit
        emit_run(client, "agent", 1)
        runs += 1
        time.sleep(0.05)
    assert client.flush(15)
    assert len(ingest.events) == runs * 4 and client.stats()["dropped_total"] == 0
    assert limiter.refused, "the test never met the limit"
    arrivals = sorted([t for t, _ in limiter.refused] + limiter.allowed)
    for refused_at, wait in limiter.refused:
        assert wait is not None
        following = [t for t in arrivals if t > refused_at]
        assert following and following[0] >= refused_at + wait - 0.05, (refused_at, wait, following[:1])
    assert_runs_in_order(ingest.events)
    client.shutdown(1)
