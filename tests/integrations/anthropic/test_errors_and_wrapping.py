"""Anthropic API errors, and the wrapping itself: per instance, reversible,
idempotent, silent outside a run and under a framework integration."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import anthropic
import httpx2
import pytest

from dunetrace import Dunetrace
from dunetrace.integrations.anthropic import is_wrapped, unwrap_anthropic
from dunetrace.model_calls import framework_model_call_ended, framework_model_call_started
from tests.ingest_server import IngestServer

from .fakes import MODEL, FakeAnthropic, async_client, message, sse, stream_events, sync_client

MESSAGES = [{"role": "user", "content": "hi"}]


def _events(ingest: IngestServer, dt: Dunetrace) -> list[dict[str, Any]]:
    assert dt.flush(5)
    return [e for e in ingest.events if e["event_type"] in ("llm.called", "llm.responded", "external.signal")]


@pytest.mark.parametrize(
    ("reply", "error_class", "signal", "status", "kind"),
    [
        (429, anthropic.RateLimitError, "rate_limit", 429, "rate_limit_error"),
        (529, anthropic.APIStatusError, "api_error", 529, "overloaded_error"),
        (500, anthropic.InternalServerError, "api_error", 500, "api_error"),
        (httpx2.ReadTimeout("timed out"), anthropic.APITimeoutError, "timeout", None, None),
    ],
)
def test_error_is_raised_unchanged_and_signalled(
    dt: Dunetrace,
    ingest: IngestServer,
    reply: Any,
    error_class: type,
    signal: str,
    status: int | None,
    kind: str | None,
) -> None:
    with pytest.raises(Exception) as plain:
        sync_client(FakeAnthropic().reply(reply)).messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)
    client = dt.wrap_anthropic(sync_client(FakeAnthropic().reply(reply)))
    with dt.run("agent"), pytest.raises(error_class) as raised:
        client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)
    assert type(raised.value) is type(plain.value) and str(raised.value) == str(plain.value)
    _, responded, signalled = _events(ingest, dt)
    assert responded["payload"]["finish_reason"] == "error"
    assert signalled["payload"]["signal_name"] == signal
    assert signalled["payload"]["source"] == "anthropic"
    assert signalled["payload"].get("http_status") == status
    assert signalled["payload"].get("api_error_type") == kind


def test_overloaded_midstream_keeps_prompt_tokens(dt: Dunetrace, ingest: IngestServer) -> None:
    body = [
        *sse(stream_events(["Par"], end=False)),
        b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}\n\n',
    ]
    client = dt.wrap_anthropic(sync_client(FakeAnthropic().reply(body)))
    with (
        dt.run("agent"),
        pytest.raises(anthropic.APIStatusError),
        client.messages.stream(model=MODEL, max_tokens=5, messages=MESSAGES) as stream,
    ):
        stream.until_done()
    _, responded, signalled = _events(ingest, dt)
    assert responded["payload"]["finish_reason"] == "error"
    assert responded["payload"]["prompt_tokens"] == 25
    assert signalled["payload"]["api_error_type"] == "overloaded_error"
    assert "http_status" not in signalled["payload"]


async def test_async_stream_helper_error_on_enter(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_anthropic(async_client(FakeAnthropic().reply(429)))
    async with dt.run("agent"):
        with pytest.raises(anthropic.RateLimitError):
            async with client.messages.stream(model=MODEL, max_tokens=5, messages=MESSAGES):
                pass
    _, responded, signalled = _events(ingest, dt)
    assert responded["payload"]["finish_reason"] == "error"
    assert signalled["payload"]["signal_name"] == "rate_limit"


def test_outside_a_run_untouched(dt: Dunetrace, ingest: IngestServer) -> None:
    body = sse(stream_events(["a"]))
    client = dt.wrap_anthropic(sync_client(FakeAnthropic().reply(message("x"), list(body))))
    assert client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES).content[0].text == "x"
    manager = client.messages.stream(model=MODEL, max_tokens=5, messages=MESSAGES)
    request = next(v for k, v in vars(manager).items() if k.endswith("__api_request"))
    assert request.__class__.__name__ == "partial"  # the SDK's own request, not ours
    with manager as stream:
        assert stream.get_final_text() == "a"
    assert dt.flush(5)
    assert ingest.events == []


def test_idempotent_reversible_and_unwrapped_at_shutdown(ingest: IngestServer) -> None:
    dt = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    client = sync_client(FakeAnthropic().reply(message("a"), message("b")))
    assert dt.wrap_anthropic(client) is dt.wrap_anthropic(client) is client
    with dt.run("agent"):
        client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)
    assert unwrap_anthropic(client) and not is_wrapped(client)
    assert "create" not in vars(client.messages) and "stream" not in vars(client.messages)
    with dt.run("agent"):
        client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)
    assert dt.flush(5)
    assert [e["event_type"] for e in ingest.events if e["event_type"].startswith("llm.")] == [
        "llm.called",
        "llm.responded",
    ]
    dt.wrap_anthropic(client)
    dt.shutdown(5)
    assert not is_wrapped(client)


def test_silent_while_a_framework_integration_reports_the_call(dt: Dunetrace, ingest: IngestServer) -> None:
    body = sse(stream_events(["a"]))
    client = dt.wrap_anthropic(sync_client(FakeAnthropic().reply(message("x"), list(body), message("y"))))
    with dt.run("agent") as run:
        mark = framework_model_call_started(run)  # what a framework integration does around its model call
        try:
            client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)
            with client.messages.stream(model=MODEL, max_tokens=5, messages=MESSAGES) as stream:
                stream.until_done()
        finally:
            framework_model_call_ended(mark)
        client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES)
    assert [e["event_type"] for e in _events(ingest, dt)] == ["llm.called", "llm.responded"]


def test_importing_the_integration_imports_no_sdk_and_names_the_extra() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["anthropic"] = None
        import dunetrace.integrations.anthropic
        from dunetrace import Dunetrace
        try:
            Dunetrace(export="none").wrap_anthropic(object())
        except ImportError as exc:
            assert "pip install 'dunetrace[anthropic]'" in str(exc), exc
            print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_retried_overload_is_signalled(dt: Dunetrace, ingest: IngestServer) -> None:
    fake = FakeAnthropic().reply(529, message("ok"))
    client = dt.wrap_anthropic(
        anthropic.Anthropic(
            api_key="sk-ant-test", max_retries=1, http_client=httpx2.Client(transport=httpx2.MockTransport(fake))
        )
    )
    with dt.run("agent"):
        assert client.messages.create(model=MODEL, max_tokens=5, messages=MESSAGES).content[0].text == "ok"
    events = _events(ingest, dt)
    assert [e["event_type"] for e in events] == ["llm.called", "external.signal", "llm.responded"]
    signal = events[1]["payload"]
    assert (signal["signal_name"], signal["http_status"], signal["source"], signal["retrying"]) == (
        "api_error",
        529,
        "anthropic",
        True,
    )
