"""A wrapped OpenAI client beside a framework's own model call.

LangChain's real ``ChatOpenAI`` talks to the scripted API on 127.0.0.1
through an OpenAI client the user wrapped too: DunetraceCallbackHandler
reports that call, and the wrapper stays silent for it (it runs in the
context the handler marked). A call made through the same wrapped client
at the same time in another asyncio task or thread of the same run is a
call of its own, and is reported.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from dunetrace import Dunetrace
from dunetrace.integrations.langchain import DunetraceCallbackHandler
from tests.ingest_server import IngestServer

from .fakes import MODEL, FakeOpenAI, chat_completion
from .server import HELD, LocalOpenAI

try:
    from langchain_openai import ChatOpenAI
except ImportError as exc:  # a test dependency: fail loudly, never skip
    raise ImportError("these tests need langchain-openai: pip install -e '.[test]'") from exc

QUESTION = [{"role": "user", "content": "Capital of Italy?"}]


@pytest.fixture
def api() -> Iterator[LocalOpenAI]:
    fake = FakeOpenAI()
    fake.default = chat_completion("Paris.")
    server = LocalOpenAI(fake)
    yield server
    server.close()


def _chat_model(api: LocalOpenAI) -> Any:
    return ChatOpenAI(model=MODEL, base_url=api.url, api_key="sk-test", max_retries=0)


def _llm_calls(ingest: IngestServer, dt: Dunetrace) -> list[dict[str, Any]]:
    assert dt.flush(5)
    return [e for e in ingest.events if e["event_type"] in ("llm.called", "llm.responded")]


async def test_a_wrapped_call_in_another_task_is_reported_and_chatopenai_once(
    dt: Dunetrace, ingest: IngestServer, api: LocalOpenAI
) -> None:
    model = _chat_model(api)
    client = dt.wrap_openai(model.root_async_client)  # ChatOpenAI's own client, wrapped by the user
    handler = DunetraceCallbackHandler(dt, agent_id="lc")

    async def beside() -> None:
        await asyncio.get_running_loop().run_in_executor(None, api.held.wait, 10)
        try:
            await client.chat.completions.create(model=MODEL, messages=QUESTION)
        finally:
            api.release()

    async with dt.run("app") as run:
        framework = asyncio.create_task(model.ainvoke(HELD, config={"callbacks": [handler]}))
        await asyncio.gather(framework, beside())

    assert len(api.fake.requests) == 2  # both calls reached the API
    events = _llm_calls(ingest, dt)
    assert {e["run_id"] for e in events} == {run.run_id}
    assert [e["event_type"] for e in events].count("llm.called") == 2
    assert [e["event_type"] for e in events].count("llm.responded") == 2
    # The wrapped call answered first (the framework's waited for it): a
    # call of its own, with the tokens the API sent.
    first = next(e for e in events if e["event_type"] == "llm.responded")
    assert first["payload"]["prompt_tokens"] == 21


def test_a_wrapped_call_while_chatopenai_runs_in_another_thread_is_reported(
    dt: Dunetrace, ingest: IngestServer, api: LocalOpenAI
) -> None:
    model = _chat_model(api)
    client = dt.wrap_openai(model.root_client)
    handler = DunetraceCallbackHandler(dt, agent_id="lc")
    failures: list[BaseException] = []

    def framework(context: contextvars.Context) -> None:
        try:
            context.run(model.invoke, HELD, config={"callbacks": [handler]})
        except BaseException as exc:
            failures.append(exc)

    with dt.run("app") as run:
        worker = threading.Thread(target=framework, args=(contextvars.copy_context(),))
        worker.start()
        try:
            assert api.held.wait(10), "ChatOpenAI's request never arrived"
            client.chat.completions.create(model=MODEL, messages=QUESTION)
        finally:
            api.release()
            worker.join(10)
    assert not failures

    events = _llm_calls(ingest, dt)
    assert {e["run_id"] for e in events} == {run.run_id}
    assert [e["event_type"] for e in events] == ["llm.called", "llm.called", "llm.responded", "llm.responded"]


def test_chatopenai_over_a_wrapped_client_alone_is_reported_once(
    dt: Dunetrace, ingest: IngestServer, api: LocalOpenAI
) -> None:
    model = _chat_model(api)
    dt.wrap_openai(model.root_client)
    handler = DunetraceCallbackHandler(dt, agent_id="lc")
    model.invoke("Capital of France?", config={"callbacks": [handler]})
    model.invoke("Capital of Spain?", config={"callbacks": [handler]})
    events = _llm_calls(ingest, dt)
    assert [e["event_type"] for e in events] == ["llm.called", "llm.responded"] * 2
    assert all(e["agent_id"] == "lc" for e in events)
