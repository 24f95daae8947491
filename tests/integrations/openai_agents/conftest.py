"""What the OpenAI Agents SDK tests share: no trace goes to OpenAI."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def no_openai_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without a key the SDK's own exporter skips sending traces to OpenAI.
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
