"""The alert outbox against real HTTP receivers on 127.0.0.1: pending
deliveries live in the database and survive a restart; a failing webhook
gets a bounded number of attempts and never delays Slack."""

from __future__ import annotations

import itertools
import json
import time
from pathlib import Path

from dunetrace.collector.alerts import AlertDispatcher, verify_signature
from dunetrace.collector.store import Store

from .test_alerts import SECRET, Receiver, make_signal


def test_a_failing_webhook_never_delays_slack_and_gets_bounded_attempts(tmp_path: Path) -> None:
    store = Store(str(tmp_path / "a.db"))
    slack, failing = Receiver(), Receiver(*([500] * 1000))
    dispatcher = AlertDispatcher(
        slack_webhook_url=slack.url,
        webhook_url=failing.url,
        webhook_secret=SECRET,
        max_attempts=4,
        backoff_base=0.2,
        backoff_max=1.0,
        outbox=store,
    )
    try:
        started = time.monotonic()
        for i in range(5):
            dispatcher.submit(make_signal(run_id=f"run-{i}"))
        got = slack.wait_for(5, timeout=5)
        slack_done = time.monotonic() - started
        assert sorted(json.loads(r["body"])["text"].split("`")[3] for r in got) == [f"run-{i}" for i in range(5)]
        # Slack got everything while the webhook was still in its first backoff.
        assert slack_done < 0.5, slack_done
        assert dispatcher.wait_idle(15)
        requests = failing.requests
        assert len(requests) == 5 * 4  # four attempts per alert, then given up: no storm
        by_delivery: dict[str, list[float]] = {}
        for r in requests:
            by_delivery.setdefault(r["headers"]["X-Dunetrace-Delivery"], []).append(r["at"])
        for times in by_delivery.values():
            waits = [b - a for a, b in itertools.pairwise(times)]
            assert waits[0] >= 0.09 and waits[1] >= 0.19 and waits[2] >= 0.39  # exponential, with jitter in [0.5, 1)
        assert all(verify_signature(r["body"], r["headers"]["X-Dunetrace-Signature"], SECRET) for r in requests)
        stats = dispatcher.stats()
        assert (stats["delivered"], stats["failed"], stats["pending"]) == (5, 5, 0)
    finally:
        dispatcher.stop(1)
        store.close()
        slack.close()
        failing.close()


def test_pending_alerts_survive_a_restart(tmp_path: Path) -> None:
    path = str(tmp_path / "a.db")
    down = Receiver(*([503] * 1000))
    store = Store(path)
    dispatcher = AlertDispatcher(
        webhook_url=down.url, max_attempts=50, backoff_base=0.05, backoff_max=0.2, outbox=store
    )
    for i in range(3):
        dispatcher.submit(make_signal(run_id=f"run-{i}"))
    down.wait_for(3)
    dispatcher.stop(0.2)  # the receiver is still down: the deliveries stay in the file
    assert dispatcher.stats()["dropped"] == 0
    store.close()
    down.close()

    store = Store(path)
    assert store.outbox_pending() == 3
    good = Receiver()
    dispatcher = AlertDispatcher(webhook_url=good.url, outbox=store)
    try:
        dispatcher.start()
        got = good.wait_for(3)
        assert dispatcher.wait_idle(5)
        assert sorted(json.loads(r["body"])["run_id"] for r in got) == ["run-0", "run-1", "run-2"]
        assert store.outbox_pending() == 0
        time.sleep(0.2)
        assert len(good.requests) == 3  # each once
    finally:
        dispatcher.stop(1)
        store.close()
        good.close()


def test_a_judged_runs_alert_is_queued_with_its_judgement(tmp_path: Path) -> None:
    """The collector writes the alert in the judgement's transaction: with
    the receiver down and the collector stopped, the next collector sends it."""
    from dunetrace import Dunetrace
    from dunetrace.collector.server import BackgroundServer
    from dunetrace.collector.settings import Settings

    from .test_end_to_end import looping_run

    path = str(tmp_path / "c.db")
    down = Receiver(*([503] * 1000))
    server = BackgroundServer(Settings(db_path=path, webhook_url=down.url)).start()
    try:
        dt = Dunetrace(endpoint=server.url, flush_interval=0.05)
        run_id = looping_run(dt)
        assert dt.flush(5)
        dt.shutdown(5)
        down.wait_for(1)
        assert server.collector.judge.wait_idle(5)
    finally:
        server.stop()
        down.close()
    good = Receiver()
    server = BackgroundServer(Settings(db_path=path, webhook_url=good.url)).start()
    try:
        (request,) = good.wait_for(1)
        assert json.loads(request["body"])["run_id"] == run_id
        assert server.collector.dispatcher.wait_idle(5)
    finally:
        server.stop()
        good.close()
