"""Fixtures of the LlamaIndex tests: a client instrumented as "li-agent",
and the events the ingest server received."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dunetrace import Dunetrace
from dunetrace.integrations.llamaindex import instrument, uninstrument
from tests.ingest_server import IngestServer


@pytest.fixture
def instrumented(dt: Dunetrace) -> Iterator[Any]:
    """``dt`` reporting LlamaIndex runs as agent "li-agent"; detached after."""
    handler = instrument(dt, agent_id="li-agent")
    yield handler
    uninstrument()


@pytest.fixture
def received(dt: Dunetrace, ingest: IngestServer) -> Any:
    """``received()``: flush, then every event the ingest server got, in order."""

    def get() -> list[dict[str, Any]]:
        assert dt.flush(5)
        return ingest.events

    return get
