"""The drain lingers for more events, against a real HTTP server on
127.0.0.1: events that come together leave in one request (up to
``max_batch_size``), none waits longer than ``flush_interval`` for it, and a
flush, a full batch of the ceiling or a run with its own clock do not wait
for a linger they cannot keep."""

from __future__ import annotations

import json
import time

from dunetrace import Dunetrace
from tests.core.test_delivery import assert_runs_in_order, emit_run
from tests.ingest_server import IngestServer


def record_arrivals(ingest: IngestServer) -> list[tuple[float, list[dict]]]:
    """(when it arrived, its events) for each request the server accepts."""
    arrivals: list[tuple[float, list[dict]]] = []

    def record(body: bytes) -> None:
        arrivals.append((time.time(), json.loads(body)["events"]))

    ingest.validate = record  # type: ignore[assignment]
    return arrivals


def test_events_that_come_together_leave_in_one_request_within_the_interval(ingest: IngestServer) -> None:
    """Five bursts of 202 events, each more than a batch_size (100) and
    less than max_batch_size (500): each leaves in one request, its oldest
    event at most the flush interval (plus the request) after it was queued.
    A drain that sends as soon as 100 are queued (``linger`` off) sends a
    burst that starts late in its timer's period in two or three requests."""
    arrivals = record_arrivals(ingest)
    dt = Dunetrace(endpoint=ingest.url, flush_interval=0.4)
    emit_run(dt, "first", 0)  # the drain thread is up and ticking
    assert dt.flush(10)
    arrivals.clear()
    for n in range(5):
        emit_run(dt, f"burst-{n}", 100)
        time.sleep(0.9 + 0.07 * n)  # the next burst at another point of the timer's period
    assert dt.flush(10)
    dt.shutdown()
    assert [len(events) for _, events in arrivals] == [202] * 5, [len(e) for _, e in arrivals]
    waits = [at - min(e["timestamp"] for e in events) for at, events in arrivals]
    assert all(wait <= 0.4 + 0.25 for wait in waits), waits
    assert dt.stats()["dropped_total"] == 0
    assert_runs_in_order(ingest.events)


def test_a_full_batch_of_the_ceiling_leaves_at_once(ingest: IngestServer) -> None:
    """With a long flush interval, 600 events queued at once: the first 500
    leave as soon as they are queued, not when the interval is up."""
    arrivals = record_arrivals(ingest)
    dt = Dunetrace(endpoint=ingest.url, flush_interval=30)
    start = time.time()
    emit_run(dt, "flood", 299)  # 600 events
    assert ingest.wait_for(lambda events: len(events) >= 500, timeout=10)
    assert time.time() - start < 10
    assert len(arrivals[0][1]) == 500
    assert dt.flush(10)
    dt.shutdown()
    assert sum(len(events) for _, events in arrivals) == 600
    assert_runs_in_order(ingest.events)


def test_flush_does_not_wait_for_the_linger(ingest: IngestServer) -> None:
    dt = Dunetrace(endpoint=ingest.url, flush_interval=30)
    emit_run(dt, "first", 0)
    assert dt.flush(10)  # the drain is asleep on its 30 s timer
    emit_run(dt, "flushed", 120)  # 242 events: the batch of 100 wakes the drain, which lingers
    time.sleep(0.2)
    start = time.monotonic()
    assert dt.flush(10)
    assert time.monotonic() - start < 5
    assert len(ingest.events) == 244
    dt.shutdown()


def test_a_run_with_a_clock_of_its_own_is_sent_within_the_interval(ingest: IngestServer) -> None:
    """A run whose events carry another clock's stamps (replayed spans, far
    in the past here) cannot tell the drain their age: it waits no longer
    than the interval since its last drain, as the timer alone would."""
    dt = Dunetrace(endpoint=ingest.url, flush_interval=0.5)
    emit_run(dt, "first", 0)
    assert dt.flush(10)
    run = dt.run("replayed")
    run.clock = lambda: 1_000_000.0
    with run:
        start = time.monotonic()
        for i in range(150):
            run.tool_called("search", {"i": i})
        assert ingest.wait_for(lambda events: len(events) >= 153, timeout=10)
        assert time.monotonic() - start <= 0.5 + 0.3
    assert dt.flush(10)
    dt.shutdown()
    assert dt.stats()["dropped_total"] == 0


def test_any_batch_limits_and_bursts_keep_every_event_in_order_within_the_ceiling(ingest: IngestServer) -> None:
    """For batch sizes and bursts a user may set or make: every event is
    delivered once, each run in order, no request holds more than
    ``max_batch_size``, and no event waits past the flush interval (loosely:
    a loaded machine stalls a request now and then)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    arrivals = record_arrivals(ingest)
    examples = iter(range(1_000))

    @settings(max_examples=12, deadline=None)
    @given(
        ceiling=st.integers(1, 500),
        quiet=st.integers(1, 500),
        bursts=st.lists(st.tuples(st.integers(0, 300), st.sampled_from([0.0, 0.03, 0.12])), min_size=1, max_size=3),
    )
    def check(ceiling: int, quiet: int, bursts: list[tuple[int, float]]) -> None:
        agent = f"case-{next(examples)}"
        dt = Dunetrace(endpoint=ingest.url, flush_interval=0.05, batch_size=quiet, max_batch_size=ceiling)
        for tools, pause in bursts:
            emit_run(dt, agent, tools)
            time.sleep(pause)
        assert dt.flush(20)
        dt.shutdown()
        mine = [(at, events) for at, events in arrivals if events[0]["agent_id"] == agent]
        assert all(len(events) <= ceiling for _, events in mine)
        delivered = [e for _, events in mine for e in events]
        assert len(delivered) == sum(2 + 2 * tools for tools, _ in bursts)
        assert len({e["event_id"] for e in delivered}) == len(delivered)
        assert_runs_in_order(delivered)
        waits = [at - min(e["timestamp"] for e in events) for at, events in mine]
        assert max(waits) <= 0.05 + 1.0, waits
        assert dt.stats()["dropped_total"] == 0

    check()


def test_a_child_runs_end_reaches_the_server_before_its_parents(ingest: IngestServer) -> None:
    """A parent run and its child run of another agent, both queued in one
    linger: the parent's batch started first, but its end goes in a batch
    behind the child's, so the child's end arrives first (what CrewAI's
    crew and agent runs need). Without that, one drain puts the parent's end
    in the batch that leaves first."""
    arrivals = record_arrivals(ingest)
    dt = Dunetrace(endpoint=ingest.url, flush_interval=30)
    with dt.run("crew") as parent:
        parent.tool_called("plan")
        with dt.run("crew.researcher", parent_run_id=parent.run_id) as child:
            child.tool_called("search")
        parent.tool_called("review")
    assert dt.flush(10)
    dt.shutdown()
    order = [(e["agent_id"], e["event_type"]) for _, events in arrivals for e in events]
    ends = [agent for agent, kind in order if kind in ("run.completed", "run.errored")]
    assert ends == ["crew.researcher", "crew"], order
    assert dt.stats()["dropped_total"] == 0
    assert_runs_in_order(ingest.events)
