"""No prompt, completion, tool input or error message of a wrapped
Anthropic call reaches the ingest server."""

from __future__ import annotations

import anthropic
import pytest

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer

from .fakes import MODEL, FakeAnthropic, message, sse, stream_events, sync_client

SENTINEL = "SENTINEL-c41d2e-do-not-send"


def test_sentinel_never_leaves_the_process(dt: Dunetrace, ingest: IngestServer) -> None:
    fake = FakeAnthropic().reply(
        message(f"answer {SENTINEL}", stop_reason="tool_use", tool=("lookup", {"q": SENTINEL})),
        sse(stream_events([f"streamed {SENTINEL}"], tool=("lookup", [f'{{"q": "{SENTINEL}"}}']))),
        sse(stream_events([SENTINEL, "!"])),
        429,
    )
    fake.error_message = f"slow down {SENTINEL}"
    client = dt.wrap_anthropic(sync_client(fake))
    messages = [{"role": "user", "content": f"user {SENTINEL}"}]
    with dt.run("private", user_input=SENTINEL, system_prompt=SENTINEL):
        client.messages.create(model=MODEL, max_tokens=50, system=f"sys {SENTINEL}", messages=messages)
        for _ in client.messages.create(model=MODEL, max_tokens=50, messages=messages, stream=True):
            pass
        with client.messages.stream(model=MODEL, max_tokens=50, messages=messages) as stream:
            stream.until_done()
        with pytest.raises(anthropic.RateLimitError, match=SENTINEL):
            client.messages.create(model=MODEL, max_tokens=50, messages=messages)
    assert dt.flush(5)
    kinds = [e["event_type"] for e in ingest.events]
    assert kinds.count("llm.responded") == 4 and "external.signal" in kinds
    raw = ingest.raw()
    assert raw and SENTINEL.encode() not in raw and b"c41d2e" not in raw
