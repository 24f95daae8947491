"""API errors: the caller gets the SDK's own exception; the run gets
``finish_reason="error"`` and an external signal with the HTTP status."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer

from .fakes import MODEL, FakeOpenAI, async_client, sync_client

MESSAGES = [{"role": "user", "content": "hi"}]


def _events(ingest: IngestServer, dt: Dunetrace) -> list[dict[str, Any]]:
    assert dt.flush(5)
    return [e for e in ingest.events if e["event_type"] in ("llm.called", "llm.responded", "external.signal")]


def _raise_plain(reply: Any) -> BaseException:
    client = sync_client(FakeOpenAI().reply(reply))
    with pytest.raises(Exception) as info:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    return info.value


@pytest.mark.parametrize(
    ("reply", "error_class", "signal", "status"),
    [
        (429, openai.RateLimitError, "rate_limit", 429),
        (500, openai.InternalServerError, "api_error", 500),
        (503, openai.InternalServerError, "api_error", 503),
        (400, openai.BadRequestError, "api_error", 400),
        (httpx.ReadTimeout("timed out"), openai.APITimeoutError, "timeout", None),
        (httpx.ConnectError("refused"), openai.APIConnectionError, "api_error", None),
    ],
)
def test_error_is_raised_unchanged_and_signalled(
    dt: Dunetrace, ingest: IngestServer, reply: Any, error_class: type, signal: str, status: int | None
) -> None:
    expected = _raise_plain(reply)
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(reply)))
    with dt.run("agent"), pytest.raises(error_class) as raised:
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert type(raised.value) is type(expected)
    assert str(raised.value) == str(expected)
    assert getattr(raised.value, "status_code", None) == getattr(expected, "status_code", None)

    called, responded, signalled = _events(ingest, dt)
    assert responded["payload"]["finish_reason"] == "error"
    assert responded["step_index"] == called["step_index"]
    assert signalled["payload"]["signal_name"] == signal
    assert signalled["payload"]["source"] == "openai"
    assert signalled["payload"].get("http_status") == status
    assert signalled["payload"]["error_type"] == error_class.__name__


async def test_async_rate_limit(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(async_client(FakeOpenAI().reply(429)))
    async with dt.run("agent"):
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    _, responded, signalled = _events(ingest, dt)
    assert responded["payload"]["finish_reason"] == "error"
    assert signalled["payload"]["signal_name"] == "rate_limit"
    assert signalled["payload"]["http_status"] == 429


def test_bad_arguments_are_not_an_api_signal(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI()))
    with dt.run("agent"), pytest.raises(TypeError):
        client.chat.completions.create(model=MODEL)  # no messages: the SDK refuses
    kinds = [e["event_type"] for e in _events(ingest, dt)]
    assert "external.signal" not in kinds


def test_run_records_the_error_once_and_the_agent_can_continue(dt: Dunetrace, ingest: IngestServer) -> None:
    from .fakes import chat_completion

    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(429, chat_completion("ok"))))
    with dt.run("agent"):
        try:
            client.chat.completions.create(model=MODEL, messages=MESSAGES)
        except openai.RateLimitError:
            result = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert result.choices[0].message.content == "ok"
    finishes = [e["payload"].get("finish_reason") for e in _events(ingest, dt) if e["event_type"] == "llm.responded"]
    assert finishes == ["error", "stop"]
    assert [e["event_type"] for e in ingest.events][-1] == "run.completed"


def test_retried_attempts_are_signalled_and_the_call_reported_once(dt: Dunetrace, ingest: IngestServer) -> None:
    """The SDK retries a 429 and a 500 by itself; the caller only sees the
    success. Each retried attempt is an external signal inside the call."""
    from .fakes import chat_completion

    fake = FakeOpenAI().reply(429, 500, chat_completion("finally"))
    client = dt.wrap_openai(
        openai.OpenAI(api_key="sk-test", max_retries=2, http_client=httpx.Client(transport=httpx.MockTransport(fake)))
    )
    with dt.run("agent"):
        result = client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert result.choices[0].message.content == "finally"
    events = _events(ingest, dt)
    assert [e["event_type"] for e in events] == ["llm.called", "external.signal", "external.signal", "llm.responded"]
    first, second = events[1]["payload"], events[2]["payload"]
    assert (first["signal_name"], first["http_status"], first["attempt"]) == ("rate_limit", 429, 1)
    assert first["retrying"] is True
    assert (second["signal_name"], second["http_status"], second["attempt"]) == ("api_error", 500, 2)
    assert {e["step_index"] for e in events} == {1}
    assert events[3]["payload"]["finish_reason"] == "stop"


async def test_async_retried_timeout_is_signalled(dt: Dunetrace, ingest: IngestServer) -> None:
    from .fakes import chat_completion

    fake = FakeOpenAI().reply(httpx.ReadTimeout("slow"), chat_completion("ok"))
    fake.asynchronous = True
    client = dt.wrap_openai(
        openai.AsyncOpenAI(
            api_key="sk-test", max_retries=1, http_client=httpx.AsyncClient(transport=httpx.MockTransport(fake))
        )
    )
    async with dt.run("agent"):
        await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    signals = [e["payload"] for e in _events(ingest, dt) if e["event_type"] == "external.signal"]
    assert [(s["signal_name"], s["error_type"], s["retrying"]) for s in signals] == [("timeout", "ReadTimeout", True)]


def test_retries_outside_a_run_send_nothing(dt: Dunetrace, ingest: IngestServer) -> None:
    from .fakes import chat_completion

    fake = FakeOpenAI().reply(429, chat_completion("ok"))
    client = dt.wrap_openai(
        openai.OpenAI(api_key="sk-test", max_retries=1, http_client=httpx.Client(transport=httpx.MockTransport(fake)))
    )
    client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert dt.flush(5)
    assert ingest.events == []
