"""The pluggy hooks, each exercised through a real client and a real server."""

from __future__ import annotations

import io
import json
import logging
import pathlib

import pytest

from dunetrace import Dunetrace, ExportBatch, ExportResult, hookimpl, hookspecs
from tests.ingest_server import IngestServer


class Enricher:
    @hookimpl
    def dunetrace_event(self, event):
        event["payload"]["team"] = "search"
        event["payload"].pop("model", None)  # redact a field


class DropTools:
    @hookimpl
    def dunetrace_event(self, event):
        if event["event_type"].startswith("tool."):
            return False
        return None


class Raiser:
    calls = 0

    @hookimpl
    def dunetrace_event(self, event):
        Raiser.calls += 1
        raise RuntimeError("plugin bug")

    @hookimpl
    def dunetrace_run_started(self, run):
        raise RuntimeError("plugin bug 2")


def test_event_hook_enriches_redacts_and_drops(ingest: IngestServer) -> None:
    client = Dunetrace(endpoint=ingest.url)
    assert client.plugins.wants_events is False  # nothing implements it: no call per event
    client.plugins.register(Enricher())
    client.plugins.register(DropTools())
    assert client.plugins.wants_events is True
    with client.run("a", model="secret-model") as run:
        run.llm_called("m")
        run.tool_called("t")
    client.shutdown(5)
    events = ingest.events
    assert [e["event_type"] for e in events] == ["run.started", "llm.called", "run.completed"]
    assert all(e["payload"]["team"] == "search" for e in events)
    assert "model" not in events[0]["payload"] and "model" not in events[1]["payload"]
    assert client.stats()["dropped"] == {"dropped_by_plugin": 1}


def test_a_raising_plugin_is_logged_once_and_skipped(ingest: IngestServer, caplog: pytest.LogCaptureFixture) -> None:
    client = Dunetrace(endpoint=ingest.url)
    client.plugins.register(Raiser(), name="raiser")
    client.plugins.register(Enricher())
    with caplog.at_level(logging.ERROR, logger="dunetrace"), client.run("a") as run:  # the agent sees nothing of it
        run.tool_called("t")
        run.tool_called("t")
    client.shutdown(5)
    assert Raiser.calls == 4
    assert len(ingest.events) == 4
    # pluggy calls the last registered first: the enricher ran before the raise
    assert all(e["payload"]["team"] == "search" for e in ingest.events)
    assert caplog.text.count("plugin 'raiser' raised RuntimeError in dunetrace_event") == 1
    assert caplog.text.count("plugin 'raiser' raised RuntimeError in dunetrace_run_started") == 1


def test_a_plugin_that_breaks_the_event_gets_it_dropped(ingest: IngestServer) -> None:
    class Breaker:
        @hookimpl
        def dunetrace_event(self, event):
            event["payload"] = "not an object"

    client = Dunetrace(endpoint=ingest.url)
    client.plugins.register(Breaker())
    with client.run("a"):
        pass
    client.shutdown(5)
    assert ingest.requests == []  # a 422 is never provoked
    assert client.stats()["dropped"] == {"invalid_after_plugin": 2}


def test_configure_is_historic_and_run_hooks_see_runs(ingest: IngestServer) -> None:
    seen: list[tuple] = []

    class Watcher:
        @hookimpl
        def dunetrace_configure(self, client):
            seen.append(("configure", client))

        @hookimpl
        def dunetrace_run_started(self, run):
            seen.append(("started", run.agent_id))

        @hookimpl
        def dunetrace_run_finished(self, run, error):
            seen.append(("finished", run.agent_id, type(error).__name__ if error else None))

        @hookimpl
        def dunetrace_flush(self, client, timeout):
            seen.append(("flush", timeout))

        @hookimpl
        def dunetrace_shutdown(self, client):
            seen.append(("shutdown", client))

    client = Dunetrace(endpoint=ingest.url)
    client.plugins.register(Watcher())  # after the client was configured
    with client.run("ok"):
        pass
    with pytest.raises(ValueError), client.run("bad"):
        raise ValueError
    client.flush(3)
    client.shutdown(5)
    assert seen == [
        ("configure", client),
        ("started", "ok"),
        ("finished", "ok", None),
        ("started", "bad"),
        ("finished", "bad", "ValueError"),
        ("flush", 3),
        ("flush", 5),
        ("shutdown", client),
    ]


def test_a_plugin_holding_events_queues_them_when_flushed(ingest: IngestServer) -> None:
    """Like CrewAI's handler pool: the plugin still holds the run's end when
    the user flushes; the flush hook lets it queue it in time."""

    class Holder:
        def __init__(self) -> None:
            self.held = []

        @hookimpl
        def dunetrace_flush(self, client, timeout):
            while self.held:
                self.held.pop(0)()

    client = Dunetrace(endpoint=ingest.url, flush_interval=30)
    holder = Holder()
    client.plugins.register(holder)
    run = client.run("late").start()
    holder.held.append(run.finish)
    assert client.shutdown(5)
    assert [e["event_type"] for e in ingest.events] == ["run.started", "run.completed"]


def test_a_plugin_deferring_work_gets_it_done_on_the_drain_thread(ingest: IngestServer) -> None:
    """The drain hook: a plugin that only records in its framework's
    callbacks translates at each wake of the drain thread, which runs from
    the plugin's registration on, before any event exists."""
    import threading

    class Deferrer:
        def __init__(self) -> None:
            self.recorded = []
            self.threads = set()

        @hookimpl
        def dunetrace_drain(self, client):
            self.threads.add(threading.current_thread().name)
            while self.recorded:
                self.recorded.pop(0)()

    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    deferrer = Deferrer()
    client.plugins.register(deferrer)
    assert client._buffer._thread is not None and client._buffer._thread.is_alive()
    run = client.run("deferred")
    deferrer.recorded += [run.start, lambda: run.tool_called("search", {"q": 1}), run.finish]
    # no flush: the drain thread's own wake does the work and sends it
    assert ingest.wait_for(lambda events: len(events) == 3, timeout=5)
    assert [e["event_type"] for e in ingest.events] == ["run.started", "tool.called", "run.completed"]
    assert deferrer.threads == {"dunetrace-drain"}
    client.shutdown(5)


def test_export_hook_and_stdout_exporter_deliver_each_batch_once_despite_retries(ingest: IngestServer) -> None:
    ingest.script.extend([(503, {}), (503, {})])
    received: list[ExportBatch] = []

    class Collect:
        @hookimpl
        def dunetrace_export(self, batch):
            if "collect" not in batch.delivered_by:
                received.append(batch)
                batch.delivered_by.add("collect")
            return ExportResult.ok()

    client = Dunetrace(endpoint=ingest.url, export="http,stdout", flush_interval=0.02, initial_backoff=0.02)
    out = io.StringIO()
    client.plugins.get_plugin("dunetrace.stdout")._stream = out
    client.plugins.register(Collect())
    with client.run("a") as run:
        run.tool_called("t")
    assert client.flush(5)
    client.shutdown(1)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event_type"] for e in lines] == ["run.started", "tool.called", "run.completed"]
    assert len(received) == 1 and [e["event_type"] for e in received[0].events] == [e["event_type"] for e in lines]
    assert json.loads(received[0].body)["agent_id"] == "a"
    assert len(ingest.events) == 3 and client.stats()["retries"] == 2


def test_a_plugin_exporter_can_ask_for_a_retry(ingest: IngestServer) -> None:
    attempts = []

    class Flaky:
        @hookimpl
        def dunetrace_export(self, batch):
            attempts.append(batch.attempts)
            if batch.attempts < 3:
                return ExportResult.retry(after=0.01, reason="flaky sink")
            return ExportResult.ok()

    client = Dunetrace(endpoint=ingest.url, export="none", flush_interval=0.02, initial_backoff=0.01)
    client.plugins.register(Flaky())
    with client.run("a"):
        pass
    assert client.flush(5)
    assert attempts == [1, 2, 3]
    assert client.stats()["sent"] == 2
    client.shutdown(1)


def test_no_exporter_counts_drops(caplog: pytest.LogCaptureFixture) -> None:
    client = Dunetrace(export="none")
    with caplog.at_level(logging.WARNING, logger="dunetrace"):
        with client.run("a"):
            pass
        client.flush(5)
    assert client.stats()["dropped"] == {"no_exporter": 2}
    assert "no exporter is registered" in caplog.text
    client.shutdown(1)


def test_every_hook_has_a_test() -> None:
    names = [n for n in dir(hookspecs) if n.startswith("dunetrace_")]
    here = pathlib.Path(__file__).read_text()
    missing = [n for n in names if f"def {n}(" not in here]
    assert names and missing == []


class BrokenExporter:
    @hookimpl
    def dunetrace_export(self, batch):
        raise RuntimeError("exporter bug")


def test_a_raising_exporter_does_not_stop_http_delivery(ingest: IngestServer, caplog: pytest.LogCaptureFixture) -> None:
    client = Dunetrace(endpoint=ingest.url)
    client.plugins.register(BrokenExporter(), name="broken")
    with caplog.at_level(logging.ERROR, logger="dunetrace"):
        with client.run("a") as run:
            run.tool_called("t")
        assert client.shutdown(5)
    # the built-in exporter runs first (tryfirst), so the batch was delivered
    assert len(ingest.events) == 3 and client.stats()["dropped"] == {}
    assert caplog.text.count("plugin 'broken' raised RuntimeError in dunetrace_export") == 1


def test_a_raising_exporter_alone_drops_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    client = Dunetrace(export="none")
    client.plugins.register(BrokenExporter(), name="broken")
    with client.run("a"):
        pass
    client.shutdown(5)
    assert client.stats()["dropped"] == {"export_plugin_error": 2}
