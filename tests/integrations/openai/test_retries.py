"""The client's own retries (``max_retries``) on every path: one run, one
call, and each retried attempt visible as an ``external.signal`` with
``retrying=True``, its ``attempt`` number and HTTP status; when every
attempt fails, the call is answered failed with the last one's class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer

from .fakes import MODEL, FakeOpenAI, chat_chunks, chat_completion, sse

CHAT = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}]}


def _client(fake: FakeOpenAI, retries: int, asynchronous: bool = False) -> Any:
    if asynchronous:
        fake.asynchronous = True
        return openai.AsyncOpenAI(
            api_key="sk-test", max_retries=retries, http_client=httpx.AsyncClient(transport=httpx.MockTransport(fake))
        )
    return openai.OpenAI(
        api_key="sk-test", max_retries=retries, http_client=httpx.Client(transport=httpx.MockTransport(fake))
    )


def _events(ingest: IngestServer, dt: Dunetrace) -> list[dict[str, Any]]:
    assert dt.flush(5)
    assert len({e["run_id"] for e in ingest.events}) == 1  # one run
    return ingest.events[1:-1]


def _stream(client: openai.OpenAI) -> Any:
    return list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **CHAT))


def _raw(client: openai.OpenAI) -> Any:
    return client.chat.completions.with_raw_response.create(**CHAT).parse()


def _helper(client: openai.OpenAI) -> Any:
    with client.chat.completions.stream(**CHAT) as stream:
        return stream.get_final_completion()


@pytest.mark.parametrize(
    ("call", "success"),
    [(_stream, sse(chat_chunks(["ok"]))), (_raw, chat_completion("ok")), (_helper, sse(chat_chunks(["ok"])))],
    ids=["stream", "raw", "helper"],
)
def test_retried_attempts_on_every_path(
    dt: Dunetrace, ingest: IngestServer, call: Callable[[openai.OpenAI], Any], success: Any
) -> None:
    client = dt.wrap_openai(_client(FakeOpenAI().reply(503, 429, success), retries=2))
    with dt.run("agent"):
        call(client)
    events = _events(ingest, dt)
    assert [e["event_type"] for e in events] == ["llm.called", "external.signal", "external.signal", "llm.responded"]
    attempts = [(e["payload"]["http_status"], e["payload"]["attempt"], e["payload"]["retrying"]) for e in events[1:3]]
    assert attempts == [(503, 1, True), (429, 2, True)]
    assert events[-1]["payload"]["finish_reason"] == "stop"
    assert {e["step_index"] for e in events} == {1}  # the attempts belong to the one call


async def test_async_retries_exhausted(dt: Dunetrace, ingest: IngestServer) -> None:
    client = dt.wrap_openai(_client(FakeOpenAI().reply(500, 502), retries=1, asynchronous=True))
    with pytest.raises(openai.InternalServerError):
        async with dt.run("agent"):
            await client.chat.completions.create(**CHAT)
    events = _events(ingest, dt)
    kinds = [e["event_type"] for e in events]
    assert kinds == ["llm.called", "external.signal", "llm.responded", "external.signal"]
    retried, answer, final = events[1]["payload"], events[2]["payload"], events[3]["payload"]
    assert (retried["http_status"], retried["attempt"], retried["retrying"]) == (500, 1, True)
    assert answer["finish_reason"] == "error" and answer["error_type"] == "InternalServerError"
    assert final["http_status"] == 502 and "retrying" not in final
