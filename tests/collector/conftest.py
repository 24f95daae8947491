"""Fixtures of the collector tests: real collectors (uvicorn on
127.0.0.1) started with the settings a test gives, stopped after it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dunetrace import Dunetrace
from dunetrace.collector.server import BackgroundServer
from dunetrace.collector.settings import Settings


@pytest.fixture
def start_collector(tmp_path: Path) -> Iterator[Callable[..., BackgroundServer]]:
    """Starts a real collector (uvicorn on 127.0.0.1, a free port) with the
    given settings; all are stopped after the test."""
    servers: list[BackgroundServer] = []

    def start(**settings: Any) -> BackgroundServer:
        settings.setdefault("db_path", str(tmp_path / f"collector{len(servers)}.db"))
        server = BackgroundServer(Settings(**settings)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def collector(start_collector: Callable[..., BackgroundServer]) -> BackgroundServer:
    return start_collector()


@pytest.fixture
def sdk(collector: BackgroundServer) -> Iterator[Dunetrace]:
    """The real SDK, pointed at the collector."""
    client = Dunetrace(endpoint=collector.url, flush_interval=0.05)
    yield client
    client.shutdown(timeout=5)
