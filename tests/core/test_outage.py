"""A backend down for 30 s while the agent emits 2,000 events a second,
with default settings, against a real HTTP server on 127.0.0.1: first
nothing listening (connection refused), then a server answering 503.
Nothing is lost, and delivery resumes within about a second of the
backend's return."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from dunetrace import Dunetrace
from tests.core.test_delivery import assert_runs_in_order, free_port
from tests.ingest_server import IngestServer

RATE = 2_000  # events a second
OUTAGE = 30.0  # seconds
AFTER = 2.0  # seconds of emitting once the backend is back


def emit_steadily(client: Dunetrace, stop: threading.Event, emitted: list[int]) -> None:
    """Runs of 50 tool calls (102 events), paced to RATE events a second."""
    start = time.monotonic()
    while not stop.is_set():
        with client.run("agent") as run:
            for i in range(50):
                step = run.tool_called("search", {"i": i})
                run.tool_responded("search", True, step=step)
        emitted[0] += 102
        ahead = emitted[0] / RATE - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)


def ride_out(client: Dunetrace, bring_back: Callable[[], IngestServer]) -> IngestServer:
    stop = threading.Event()
    emitted = [0]
    emitter = threading.Thread(target=emit_steadily, args=(client, stop, emitted))
    emitter.start()
    try:
        time.sleep(OUTAGE)
        assert client.stats()["sent"] == 0
        held = client.stats()["queued"]
        assert held >= RATE * OUTAGE * 0.9, held  # the agent kept its pace
        server = bring_back()
        back_at = time.monotonic()
        assert server.wait_for(lambda events: len(events) > 0, timeout=5)
        resumed = time.monotonic() - back_at
        assert resumed < 1.5, resumed  # the backoff is capped at max_backoff (1 s)
        time.sleep(AFTER)
    finally:
        stop.set()
        emitter.join()
    assert client.flush(30)
    events = server.events
    stats = client.stats()
    assert stats["dropped_total"] == 0, stats
    assert len(events) == emitted[0] == stats["sent"]
    assert len({e["event_id"] for e in events}) == len(events)
    assert_runs_in_order(events)
    return server


@pytest.mark.parametrize("how", ["refused", "503"])
def test_a_30s_outage_at_2000_events_a_second_loses_nothing(how: str) -> None:
    port = free_port()
    server = None
    if how == "503":
        server = IngestServer(port=port)
        server.unavailable = True
    client = Dunetrace(endpoint=f"http://127.0.0.1:{port}")  # default settings

    def bring_back() -> IngestServer:
        nonlocal server
        if server is None:
            server = IngestServer(port=port)
        server.unavailable = False
        return server

    try:
        ride_out(client, bring_back)
    finally:
        client.shutdown(1)
        if server is not None:
            server.close()


def test_events_held_through_an_outage_cost_about_310_bytes_each() -> None:
    """What options.max_queue_size's comment promises: held events wait as
    encoded batches, ~310 bytes a tool-call event, so the default bound of
    100,000 holds ~31 MB."""
    import gc
    import tracemalloc

    client = Dunetrace(endpoint=f"http://127.0.0.1:{free_port()}")  # nothing listens
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(500):  # 51,000 events
            with client.run("agent") as run:
                for i in range(50):
                    step = run.tool_called("search", {"i": i})
                    run.tool_responded("search", True, step=step)
        deadline = time.monotonic() + 10
        while client._buffer.queue and time.monotonic() < deadline:  # the drain seals them
            time.sleep(0.05)
        time.sleep(0.3)
        gc.collect()
        held = client.stats()["queued"]
        per_event = (tracemalloc.get_traced_memory()[0] - base) / held
    finally:
        tracemalloc.stop()
        client.shutdown(0.1)
    print(f"\nheld through an outage: {per_event:.0f} bytes an event")
    assert held == 51_000
    assert per_event < 360, per_event
