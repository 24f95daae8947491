"""What every integration's tests share: ``received()``, the events the
test ingest server got once ``dt`` (the folder's or the test file's own
client) delivered everything it had."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer


@pytest.fixture
def received(dt: Dunetrace, ingest: IngestServer) -> Callable[[], list[dict[str, Any]]]:
    """``received()``: flush, then every event the ingest server got, in order."""

    def get() -> list[dict[str, Any]]:
        assert dt.flush(5)
        return ingest.events

    return get
