"""Two agents' batches out at once, against a real HTTP server on 127.0.0.1
that holds each answer back: the head batch and the first full batch of
another agent go out side by side, never two of one agent, and a failure of
either keeps its agent's order."""

from __future__ import annotations

import ssl
from collections import deque
from typing import Any

import pytest

from dunetrace import Dunetrace
from dunetrace.http_export import HttpExporter
from dunetrace.options import Options
from tests.core.test_delivery import assert_runs_in_order
from tests.ingest_server import IngestServer


def backlog(client: Dunetrace, agents: list[str], runs: int = 3, steps: int = 12) -> list[str]:
    """Runs of each agent, one after another, queued before any is sent."""
    ids = []
    for _ in range(runs):
        for agent in agents:
            with client.run(agent) as run:
                for i in range(steps):
                    step = run.tool_called("search", {"i": i})
                    run.tool_responded("search", True, step=step)
            ids.append(run.run_id)
    return ids


def started(events: list[dict[str, Any]], agent: str) -> list[str]:
    return [e["run_id"] for e in events if e["event_type"] == "run.started" and e["agent_id"] == agent]


def test_two_agents_have_a_batch_out_each_at_once(ingest: IngestServer) -> None:
    ingest.delay = 0.05
    client = Dunetrace(endpoint=ingest.url, max_batch_size=10, flush_interval=30)  # sent at shutdown
    ids = backlog(client, ["a", "b"])
    assert client.shutdown(20)
    assert ingest.max_in_flight == 2
    assert not ingest.same_agent_overlap
    events = ingest.events
    assert len(events) == len({e["event_id"] for e in events}) == 6 * 26
    assert_runs_in_order(events)
    assert started(events, "a") == ids[0::2] and started(events, "b") == ids[1::2]
    assert client.stats()["sent"] == 6 * 26
    assert len(ingest.connection_threads) == 2  # one keep-alive connection per sending thread


def test_one_agent_never_has_two_batches_out(ingest: IngestServer) -> None:
    ingest.delay = 0.02
    client = Dunetrace(endpoint=ingest.url, max_batch_size=10, flush_interval=30)
    backlog(client, ["a"], runs=4)
    assert client.shutdown(20)
    assert ingest.max_in_flight == 1
    assert len(ingest.events) == 4 * 26
    assert_runs_in_order(ingest.events)


@pytest.mark.parametrize("failing", ["a", "b"])
def test_a_failed_batch_beside_another_is_retried_in_its_agents_order(ingest: IngestServer, failing: str) -> None:
    """Whichever of the two batches out fails (5xx, then a reset), it is sent
    again before any later batch of its agent; the other agent's batch is
    delivered once."""
    # The other agent's answers take longer: the failing agent's batch
    # surely arrives while the other's is out (its scripted answers wait
    # for a request beside another).
    other = "b" if failing == "a" else "a"
    ingest.agent_delay.update({failing: 0.01, other: 0.1})
    ingest.agent_script[failing] = deque([(503, {"beside": "1"}), (0, {"beside": "1"})])
    client = Dunetrace(endpoint=ingest.url, max_batch_size=10, flush_interval=30, initial_backoff=0.05)
    ids = backlog(client, ["a", "b"])
    assert client.shutdown(20)
    assert ingest.max_in_flight == 2 and not ingest.same_agent_overlap
    events = ingest.events
    assert len(events) == len({e["event_id"] for e in events}) == 6 * 26  # nothing lost, nothing twice
    assert_runs_in_order(events)
    assert started(events, "a") == ids[0::2] and started(events, "b") == ids[1::2]
    stats = client.stats()
    assert stats["sent"] == 6 * 26 and stats["dropped_total"] == 0
    # Each failure is one retry. (After the first, batches go one at a time
    # until one is delivered, so the second may find nothing beside it.)
    assert 1 <= stats["retries"] == 2 - len(ingest.agent_script[failing])


def test_an_http_endpoint_without_a_proxy_loads_no_certificates(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    exporter = HttpExporter(Options.build("http://127.0.0.1:8001", None))
    context = exporter.tls_context()
    assert isinstance(context, ssl.SSLContext) and exporter.tls_context() is context  # built once
    # It trusts nothing, so a TLS connection, were one ever made, would fail.
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname and not context.get_ca_certs()
    # Anything else: httpx's default checks, CA bundle loaded.
    assert HttpExporter(Options.build("https://dunetrace.example", None)).tls_context().get_ca_certs()
    monkeypatch.setenv("https_proxy", "https://proxy.example:3128")
    assert HttpExporter(Options.build("http://127.0.0.1:8001", None)).tls_context().get_ca_certs()
