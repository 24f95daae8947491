"""Fixtures every test shares: the strict internal-error guard, no run left
current between tests, a real ingest server on 127.0.0.1 and a client
sending to it, a throw-away PostgreSQL for the session; and the environment
that keeps frameworks off the network."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Frameworks must not reach the network from the test suite.
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
os.environ.setdefault("CREWAI_TESTING", "true")
# Live detection is on by default for users. Tests that count events or
# batches were written without it; the tests of live signals turn it on
# with Dunetrace(detectors=True), and one test checks the default.
os.environ.setdefault("DUNETRACE_LIVE_DETECTORS", "off")

from dunetrace import Dunetrace, get_current_run
from dunetrace import log as dunetrace_log
from dunetrace.run import set_current_run
from tests.ingest_server import IngestServer


@pytest.fixture(autouse=True)
def strict_guard() -> Iterator[None]:
    """Inside tests an internal error fails the test instead of being logged
    (tests of the guard itself turn this off)."""
    dunetrace_log.strict = True
    dunetrace_log.forget_warnings()
    yield
    dunetrace_log.strict = False


@pytest.fixture(autouse=True)
def no_leaked_current_run() -> Iterator[None]:
    """A run left current after a test would become the parent of every run
    opened later in this thread: fail the test that leaked it."""
    assert get_current_run() is None, f"a run was current before this test: {get_current_run()!r}"
    yield
    leaked = get_current_run()
    if leaked is not None:
        set_current_run(None)
        pytest.fail(f"this test left {leaked!r} as the current run")


@pytest.fixture
def ingest() -> Iterator[IngestServer]:
    server = IngestServer()
    yield server
    server.close()


@pytest.fixture
def dt(ingest: IngestServer) -> Iterator[Dunetrace]:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    yield client
    client.shutdown(timeout=5)


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """A real PostgreSQL cluster on 127.0.0.1 for the session (tests/pg.py)."""
    from tests.pg import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()
