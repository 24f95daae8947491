"""Fixtures for the CrewAI tests.

Offline: tests/conftest.py sets CREWAI_DISABLE_TELEMETRY, OTEL_SDK_DISABLED
and CREWAI_TESTING before anything imports CrewAI (no telemetry, no trace
upload prompt); the LLMs are scripted ``BaseLLM`` subclasses or
``crewai.LLM`` on an ``httpx.MockTransport``; Dunetrace sends only to the
``ingest`` server on 127.0.0.1. ``no_network`` below makes any other socket
connection fail the test.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from dunetrace import Dunetrace
from dunetrace.integrations.crewai import instrument, uninstrument
from tests.ingest_server import IngestServer


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect

    def connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and host not in ("127.0.0.1", "localhost", "::1") and self.family != socket.AF_UNIX:
            raise AssertionError(f"test tried to reach the network: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


@pytest.fixture
def crew_dt(dt: Dunetrace) -> Iterator[Dunetrace]:
    instrument(dt, agent_id="crew")
    yield dt
    uninstrument(dt)
