"""Wrapping is per instance, reversible, idempotent, and silent outside a
run or when a framework integration already reports the call."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import openai

from dunetrace import Dunetrace
from dunetrace.integrations.openai import is_wrapped, unwrap_openai, wrap_openai
from dunetrace.model_calls import framework_model_call_ended, framework_model_call_started
from tests.ingest_server import IngestServer

from .fakes import MODEL, FakeOpenAI, chat_chunks, chat_completion, sse, sync_client

MESSAGES = [{"role": "user", "content": "hi"}]


def _llm_kinds(ingest: IngestServer, dt: Dunetrace) -> list[str]:
    assert dt.flush(5)
    return [e["event_type"] for e in ingest.events if e["event_type"].startswith("llm.")]


def test_same_object_same_type_other_clients_untouched(dt: Dunetrace) -> None:
    client = sync_client(FakeOpenAI())
    other = sync_client(FakeOpenAI())
    assert dt.wrap_openai(client) is client
    assert type(client) is openai.OpenAI
    assert is_wrapped(client) and not is_wrapped(other)
    assert "create" in vars(client.chat.completions)
    assert "create" not in vars(other.chat.completions)
    assert type(client.chat.completions).create is type(other.chat.completions).create


def test_outside_a_run_nothing_is_sent_and_results_are_equal(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(chat_completion("a"), sse(chat_chunks(["x", "y"])))))
    assert client.chat.completions.create(model=MODEL, messages=MESSAGES).choices[0].message.content == "a"
    stream = client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True)
    assert "_iterator" in vars(stream) and vars(stream)["_iterator"].__qualname__ == "Stream.__stream__"
    assert [c.choices[0].delta.content for c in stream if c.choices] == ["", "x", "y", None]
    assert dt.flush(5)
    assert ingest.events == []


def test_wrapping_twice_reports_once(dt: Dunetrace, ingest: IngestServer) -> None:
    client = sync_client(FakeOpenAI().reply(chat_completion("a")))
    dt.wrap_openai(client)
    dt.wrap_openai(client)
    wrap_openai(client, dt)
    with dt.run("agent"):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert _llm_kinds(ingest, dt) == ["llm.called", "llm.responded"]


def test_unwrap_restores_the_client(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(chat_completion("a"), chat_completion("b"))))
    raw_view = client.chat.completions.with_raw_response  # built while wrapped
    assert unwrap_openai(client) is True
    assert unwrap_openai(client) is False
    assert not is_wrapped(client)
    assert "create" not in vars(client.chat.completions)
    assert "copy" not in vars(client) and "with_options" not in vars(client)
    with dt.run("agent"):
        client.chat.completions.create(model=MODEL, messages=MESSAGES)
        raw_view.create(model=MODEL, messages=MESSAGES).parse()
    assert _llm_kinds(ingest, dt) == []


def test_shutdown_unwraps(ingest: IngestServer) -> None:
    dt = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    client = dt.wrap_openai(sync_client(FakeOpenAI()))
    assert is_wrapped(client)
    dt.shutdown(5)
    assert not is_wrapped(client)
    assert "create" not in vars(client.chat.completions)


def test_with_options_copy_is_wrapped(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(chat_completion("a"))))
    fast = client.with_options(timeout=5)
    assert fast is not client and is_wrapped(fast)
    with dt.run("agent"):
        fast.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert _llm_kinds(ingest, dt) == ["llm.called", "llm.responded"]


def test_silent_while_a_framework_integration_reports_the_call(dt: Dunetrace, ingest: IngestServer) -> None:
    """A framework integration marks the context of its own model call
    (dunetrace.model_calls); the wrapped client must not report the same
    call again. (The integration's side is played here exactly; the real
    LangChain one is in test_under_langchain.py.)"""
    fake = FakeOpenAI().reply(chat_completion("a"), sse(chat_chunks(["x"])), chat_completion("c"))
    client = dt.wrap_openai(sync_client(fake))
    with dt.run("agent") as run:
        step = run.llm_called("gpt-4o-mini")
        mark = framework_model_call_started(run)
        try:
            client.chat.completions.create(model=MODEL, messages=MESSAGES)
            for _ in client.chat.completions.create(model=MODEL, messages=MESSAGES, stream=True):
                pass
        finally:
            framework_model_call_ended(mark)
        run.llm_responded(1, 10.0, "stop", 1, step=step)
        client.chat.completions.create(model=MODEL, messages=MESSAGES)  # its own call again
    assert _llm_kinds(ingest, dt) == ["llm.called", "llm.responded", "llm.called", "llm.responded"]


def test_not_a_client_is_a_clear_type_error(dt: Dunetrace) -> None:
    import pytest

    with pytest.raises(TypeError, match=r"openai\.OpenAI"):
        dt.wrap_openai(object())


def test_importing_the_integration_imports_no_sdk_and_names_the_extra() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["openai"] = None
        import dunetrace.integrations.openai as integration
        assert "openai" not in [m for m in sys.modules if sys.modules[m] is not None and m == "openai"]
        from dunetrace import Dunetrace
        dt = Dunetrace(export="none")
        try:
            dt.wrap_openai(object())
        except ImportError as exc:
            assert "pip install 'dunetrace[openai]'" in str(exc), exc
            print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_streaming_response_view_is_read_when_the_caller_parses_it(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(chat_completion("a"), chat_completion("b"))))
    with dt.run("agent"):
        with client.chat.completions.with_streaming_response.create(model=MODEL, messages=MESSAGES) as response:
            assert response.parse().choices[0].message.content == "a"
            assert response.parse().choices[0].message.content == "a"  # the SDK's cache: read once
        with client.chat.completions.with_streaming_response.create(model=MODEL, messages=MESSAGES) as response:
            assert b"".join(response.iter_bytes())  # read by the caller, not parsed: timed only
    assert dt.flush(5)
    parsed, unparsed = [e["payload"] for e in ingest.events if e["event_type"] == "llm.responded"]
    assert parsed["completion_tokens"] == 8 and parsed["finish_reason"] == "stop" and "output_hash" in parsed
    assert "latency_ms" in unparsed and "output_hash" not in unparsed and "finish_reason" not in unparsed


async def test_async_raw_response(dt: Dunetrace, ingest: IngestServer) -> None:
    from .fakes import async_client

    client = dt.wrap_openai(async_client(FakeOpenAI().reply(chat_completion("a"))))
    async with dt.run("agent"):
        raw = await client.chat.completions.with_raw_response.create(model=MODEL, messages=MESSAGES)
    assert raw.parse().choices[0].message.content == "a"
    assert dt.flush(5)
    responded = [e["payload"] for e in ingest.events if e["event_type"] == "llm.responded"]
    assert responded[0]["completion_tokens"] == 8 and responded[0]["finish_reason"] == "stop"


async def test_async_method_behind_an_opaque_decorator_is_still_timed_on_await(
    dt: Dunetrace, ingest: IngestServer
) -> None:
    """Another library may have wrapped ``create`` so that it no longer looks
    like a coroutine function; the call is still reported when awaited."""
    from .fakes import async_client

    client = async_client(FakeOpenAI().reply(chat_completion("late")))
    real_create = client.chat.completions.create

    def opaque(*args, **kwargs):  # type: ignore[no-untyped-def]
        return real_create(*args, **kwargs)

    client.chat.completions.create = opaque  # type: ignore[method-assign]
    dt.wrap_openai(client)
    async with dt.run("agent"):
        result = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert result.choices[0].message.content == "late"
    assert dt.flush(5)
    responded = [e["payload"] for e in ingest.events if e["event_type"] == "llm.responded"]
    assert responded[0]["finish_reason"] == "stop" and responded[0]["completion_tokens"] == 8
    assert unwrap_openai(client)
    assert client.chat.completions.create is opaque  # the previous instance attribute is put back
