"""Fixtures of the LlamaIndex tests: a client instrumented as "li-agent"
(``received()`` comes from tests/integrations/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dunetrace import Dunetrace
from dunetrace.integrations.llamaindex import instrument, uninstrument


@pytest.fixture
def instrumented(dt: Dunetrace) -> Iterator[Any]:
    """``dt`` reporting LlamaIndex runs as agent "li-agent"; detached after."""
    handler = instrument(dt, agent_id="li-agent")
    yield handler
    uninstrument()
