"""Session fixtures: the real upstream backend (ingest service and detector
worker, tests/upstream/backend.py) on the session's PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import PostgresServer
from tests.upstream.backend import UpstreamBackend, backend_dir, venv_python


@pytest.fixture(scope="session")
def upstream(postgres: PostgresServer) -> Iterator[UpstreamBackend]:
    backend = backend_dir()
    server = UpstreamBackend(postgres, backend, venv_python(backend))
    yield server
    server.stop()
