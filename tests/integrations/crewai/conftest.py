"""Fixtures for the CrewAI tests.

Offline: tests/conftest.py sets CREWAI_DISABLE_TELEMETRY, OTEL_SDK_DISABLED
and CREWAI_TESTING before anything imports CrewAI (no telemetry, no trace
upload prompt); the LLMs are scripted ``BaseLLM`` subclasses or
``crewai.LLM`` on an ``httpx.MockTransport``; Dunetrace sends only to the
``ingest`` server on 127.0.0.1. ``no_network`` below fails a test that
tried to resolve or connect to any other host.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest

from dunetrace import Dunetrace
from dunetrace.integrations.crewai import instrument, uninstrument

_LOCAL = ("127.0.0.1", "localhost", "::1")


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Records every attempt to resolve or reach a host other than this
    machine (CrewAI would swallow an exception raised in its telemetry
    thread) and fails the test after it if there was one."""
    attempts: list[Any] = []
    real_connect = socket.socket.connect
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in _LOCAL:
            attempts.append(address)
            raise OSError(f"network disabled in tests: {address!r}")
        return real_connect(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in _LOCAL and host is not None:
            attempts.append(host)
            raise socket.gaierror(f"network disabled in tests: {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    assert attempts == [], f"the test tried to reach the network: {attempts}"


@pytest.fixture
def crew_dt(dt: Dunetrace) -> Iterator[Dunetrace]:
    instrument(dt, agent_id="crew")
    yield dt
    uninstrument(dt)
