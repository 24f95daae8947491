"""Policies through the wrapped OpenAI client: a stop raises before the
request is sent; switch_model changes the model of later requests."""

from __future__ import annotations

import asyncio

import pytest

from dunetrace import Dunetrace, PolicyViolation
from dunetrace import log as dunetrace_log
from tests.ingest_server import IngestServer

from .fakes import FakeOpenAI, async_client, chat_completion, sync_client

MESSAGES = [{"role": "user", "content": "Capital of France?"}]


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "as-shipped"])
def test_stop_raises_before_the_request_is_sent(strict: bool, dt: Dunetrace, ingest: IngestServer) -> None:
    dunetrace_log.strict = strict
    dt.add_policy("cap", when={"tokens": 60}, then="stop")
    fake = FakeOpenAI()
    fake.default = chat_completion()  # 21 + 8 tokens a call
    client = dt.wrap_openai(sync_client(fake))
    made = 0
    with pytest.raises(PolicyViolation, match="tokens >= 60"), dt.run("chatty"):
        for _ in range(5):
            client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
            made += 1
    assert made == 3 and len(fake.requests) == 3  # the fourth never left
    assert dt.flush(5)
    events = ingest.events
    assert sum(e["event_type"] == "llm.called" for e in events) == 3
    assert events[-1]["payload"]["error_type"] == "PolicyViolation"


def test_async_stop_raises_before_the_request_is_sent(dt: Dunetrace) -> None:
    dt.add_policy("cap", when={"steps": 2}, then="stop")
    fake = FakeOpenAI()
    fake.default = chat_completion()
    client = dt.wrap_openai(async_client(fake))

    async def agent() -> None:
        async with dt.run("chatty"):
            for _ in range(5):
                await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    with pytest.raises(PolicyViolation):
        asyncio.run(agent())
    assert len(fake.requests) == 2


def test_switch_model_changes_later_requests(dt: Dunetrace, ingest: IngestServer) -> None:
    dt.add_policy("cheaper", when={"steps": 2}, then={"switch_model": "gpt-4o-nano"})
    fake = FakeOpenAI()
    fake.default = chat_completion()
    client = dt.wrap_openai(sync_client(fake))
    with dt.run("chatty"):
        for _ in range(3):
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert [r["model"] for r in fake.requests] == ["gpt-4o", "gpt-4o", "gpt-4o-nano"]
    assert dt.flush(5)
    models = [e["payload"]["model"] for e in ingest.events if e["event_type"] == "llm.called"]
    assert models == ["gpt-4o", "gpt-4o", "gpt-4o-nano"]


def test_inject_prompt_adds_a_user_message_to_the_next_request(dt: Dunetrace, ingest: IngestServer) -> None:
    dt.add_policy("nudge", when={"steps": 1}, then={"inject_prompt": "NUDGE-TEXT answer now"})
    fake = FakeOpenAI()
    fake.default = chat_completion()
    client = dt.wrap_openai(sync_client(fake))
    messages = list(MESSAGES)
    with dt.run("chatty"):
        client.chat.completions.create(model="gpt-4o", messages=messages)
        client.chat.completions.create(model="gpt-4o", messages=messages)
        client.chat.completions.create(model="gpt-4o", messages=messages)
    sent = [r["messages"] for r in fake.requests]
    assert sent[0] == MESSAGES and sent[2] == MESSAGES  # once, on the call after the trigger
    assert sent[1] == [*MESSAGES, {"role": "user", "content": "NUDGE-TEXT answer now"}]
    assert messages == MESSAGES  # the caller's list is untouched
    assert dt.flush(5)
    assert b"NUDGE-TEXT" not in ingest.raw()


def test_inject_prompt_on_the_responses_api(dt: Dunetrace) -> None:
    from .fakes import response_object

    dt.add_policy("nudge", when={"steps": 1}, then={"inject_prompt": "answer now"})
    fake = FakeOpenAI()
    fake.default = response_object()
    client = dt.wrap_openai(sync_client(fake))
    with dt.run("chatty"):
        client.responses.create(model="gpt-4o", input="Capital of France?")
        client.responses.create(model="gpt-4o", input="Capital of France?")
    assert fake.requests[0]["input"] == "Capital of France?"
    assert fake.requests[1]["input"] == [
        {"role": "user", "content": "Capital of France?"},
        {"role": "user", "content": "answer now"},
    ]
