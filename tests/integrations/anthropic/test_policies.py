"""Policies through the wrapped Anthropic client: a stop raises before the
request is sent (create and stream); switch_model changes later requests."""

from __future__ import annotations

import pytest

from dunetrace import Dunetrace, PolicyViolation
from dunetrace import log as dunetrace_log
from tests.ingest_server import IngestServer

from .fakes import MODEL, FakeAnthropic, message, sse, stream_events, sync_client

MESSAGES = [{"role": "user", "content": "Capital of France?"}]


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "as-shipped"])
def test_stop_raises_before_the_request_is_sent(strict: bool, dt: Dunetrace, ingest: IngestServer) -> None:
    dunetrace_log.strict = strict
    dt.add_policy("cap", when={"steps": 2}, then="stop")
    fake = FakeAnthropic().reply(message(), sse(stream_events(["Paris", "."])), message())
    client = dt.wrap_anthropic(sync_client(fake))
    with pytest.raises(PolicyViolation, match="cap"), dt.run("chatty"):
        client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        with client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
            stream.get_final_message()
        client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert len(fake.requests) == 2
    assert dt.flush(5)
    assert ingest.events[-1]["payload"]["error_type"] == "PolicyViolation"


def test_a_stream_is_stopped_before_it_is_opened(dt: Dunetrace) -> None:
    dt.add_policy("cap", when={"steps": 1}, then="stop")
    fake = FakeAnthropic().reply(message(), sse(stream_events(["Paris", "."])))
    client = dt.wrap_anthropic(sync_client(fake))
    with pytest.raises(PolicyViolation), dt.run("chatty"):
        client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        with client.messages.stream(model=MODEL, max_tokens=100, messages=MESSAGES) as stream:
            stream.get_final_message()
    assert len(fake.requests) == 1


def test_switch_model_changes_later_requests(dt: Dunetrace) -> None:
    dt.add_policy("cheaper", when={"steps": 1}, then={"switch_model": "claude-haiku-4-5"})
    fake = FakeAnthropic().reply(message(), message())
    client = dt.wrap_anthropic(sync_client(fake))
    with dt.run("chatty"):
        client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert [r["model"] for r in fake.requests] == [MODEL, "claude-haiku-4-5"]


def test_inject_prompt_adds_a_user_message_to_the_next_request(dt: Dunetrace) -> None:
    dt.add_policy("nudge", when={"steps": 1}, then={"inject_prompt": "answer now"})
    fake = FakeAnthropic().reply(message(), message())
    client = dt.wrap_anthropic(sync_client(fake))
    with dt.run("chatty"):
        client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
        client.messages.create(model=MODEL, max_tokens=100, messages=MESSAGES)
    assert fake.requests[0]["messages"] == MESSAGES
    assert fake.requests[1]["messages"] == [*MESSAGES, {"role": "user", "content": "answer now"}]
