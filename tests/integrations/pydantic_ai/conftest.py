"""What the Pydantic AI tests share: ``received()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer


@pytest.fixture
def received(dt: Dunetrace, ingest: IngestServer) -> Callable[[], list[dict[str, Any]]]:
    """What reached the test ingest server, once ``dt`` (the test file's own
    client) delivered everything it had."""

    def get() -> list[dict[str, Any]]:
        assert dt.flush(5)
        return ingest.events

    return get
