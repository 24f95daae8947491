"""What the OpenAI Agents SDK tests share: no trace goes to OpenAI, and
``received()``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer


@pytest.fixture(autouse=True)
def no_openai_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without a key the SDK's own exporter skips sending traces to OpenAI.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


@pytest.fixture
def received(dt: Dunetrace, ingest: IngestServer) -> Callable[[], list[dict[str, Any]]]:
    """What reached the test ingest server, once ``dt`` (the test file's own
    client) delivered everything it had."""

    def get() -> list[dict[str, Any]]:
        assert dt.flush(5)
        return ingest.events

    return get
