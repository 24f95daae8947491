"""No prompt, completion, tool argument or error message of a wrapped
OpenAI call reaches the ingest server: only hashes and counts do."""

from __future__ import annotations

import openai
import pytest

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer

from .fakes import (
    FakeOpenAI,
    chat_chunks,
    chat_completion,
    response_events,
    response_object,
    sse,
    sync_client,
    tool_call,
)

SENTINEL = "SENTINEL-7f3a9c-do-not-send"


def test_sentinel_never_leaves_the_process(dt: Dunetrace, ingest: IngestServer) -> None:
    fake = FakeOpenAI().reply(
        chat_completion(f"answer {SENTINEL}"),
        chat_completion(None, finish_reason="tool_calls", tool_calls=[tool_call("lookup", f'{{"q": "{SENTINEL}"}}')]),
        sse(chat_chunks([f"streamed {SENTINEL}", "!"])),
        sse(chat_chunks([], finish_reason="tool_calls", tool=("lookup", [f'{{"q": "{SENTINEL}', '"}']))),
        response_object(f"resp {SENTINEL}", function_call=("lookup", f'{{"q": "{SENTINEL}"}}')),
        sse(response_events([SENTINEL, "."]), named=True),
        429,
    )
    fake.error_message = f"rate limited for {SENTINEL}"
    client = dt.wrap_openai(sync_client(fake))
    messages = [
        {"role": "system", "content": f"system {SENTINEL}"},
        {"role": "user", "content": f"user {SENTINEL}"},
    ]
    with dt.run("private", user_input=f"input {SENTINEL}", system_prompt=f"system {SENTINEL}"):
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        client.chat.completions.create(model="gpt-4o-mini", messages=messages)
        for _ in client.chat.completions.create(
            model="gpt-4o-mini", messages=messages, stream=True, stream_options={"include_usage": True}
        ):
            pass
        for _ in client.chat.completions.create(model="gpt-4o-mini", messages=messages, stream=True):
            pass
        client.responses.create(model="gpt-4.1", instructions=f"be {SENTINEL}", input=f"q {SENTINEL}")
        for _ in client.responses.create(model="gpt-4.1", input=f"q {SENTINEL}", stream=True):
            pass
        with pytest.raises(openai.RateLimitError, match=SENTINEL):
            client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert dt.flush(5)

    kinds = [e["event_type"] for e in ingest.events]
    assert kinds.count("llm.responded") == 7 and "external.signal" in kinds
    assert all(
        "output_hash" in e["payload"]
        for e in ingest.events
        if e["event_type"] == "llm.responded" and e["payload"].get("finish_reason") != "error"
    )
    raw = ingest.raw()
    assert raw  # something was sent
    assert SENTINEL.encode() not in raw
    assert b"7f3a9c" not in raw
