"""shutdown() while a batch is on its way: the request finishes and its
answer counts, the connection closes after it, and nothing is sent after."""

from __future__ import annotations

import logging
import time

import pytest

from dunetrace import Dunetrace
from dunetrace.export import ExportBatch
from dunetrace.http_export import HttpExporter
from dunetrace.options import Options
from tests.ingest_server import IngestServer


def test_a_request_under_way_at_shutdown_is_answered_and_counted(
    ingest: IngestServer, caplog: pytest.LogCaptureFixture
) -> None:
    ingest.delay = 1.0  # the answer comes well after shutdown() has given up waiting
    dt = Dunetrace(endpoint=ingest.url, flush_interval=0.01)
    with dt.run("agent") as run:
        run.tool_called("search")
        run.tool_responded("search", True, latency_ms=1.0)
    deadline = time.monotonic() + 5
    while not ingest.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    assert ingest.requests, "the batch never left"
    with caplog.at_level(logging.WARNING, logger="dunetrace"):
        assert dt.shutdown(0.1) is False  # still on its way
        deadline = time.monotonic() + 10
        while dt.stats()["sent"] < 4 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert dt.stats()["sent"] == 4, dt.stats()
    assert dt.stats()["retries"] == 0 and dt.stats()["dropped"] == {}
    assert len(ingest.bodies) == 1  # the server answered it, once
    assert not [r for r in caplog.records if "delivery failed" in r.getMessage()]
    http = dt._http
    assert http is not None
    deadline = time.monotonic() + 5
    while not http.closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert http.closed  # the connection went once the answer was in


def test_a_batch_offered_after_close_is_dropped_and_no_connection_opens(ingest: IngestServer) -> None:
    exporter = HttpExporter(Options.build(ingest.url, ""))
    body = b'{"api_key": "", "agent_id": "a", "events": []}'
    assert exporter.dunetrace_export(ExportBatch("a", body, 0)).outcome == "ok"
    exporter.close()
    result = exporter.dunetrace_export(ExportBatch("a", body, 0))
    exporter.send_deploy({"api_key": "", "agent_id": "a", "version": "1", "meta": {}})
    time.sleep(0.1)
    assert len(ingest.requests) == 1  # only the one before close()
    assert (result.outcome, result.reason) == ("drop", "shutdown")
    assert exporter.closed  # and no client was built again
