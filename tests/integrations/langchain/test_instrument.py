"""instrument() / uninstrument(): every invoke reported without passing
callbacks, once, and undone exactly."""

from __future__ import annotations

from typing import Any

from langchain_core.tracers import context as lc_context

from dunetrace import Dunetrace
from dunetrace.integrations import langchain as dt_langchain
from dunetrace.integrations.langchain import DunetraceCallbackHandler

from .conftest import delivered, runs_of, well_formed
from .fakes import agent, call, question

SCRIPT = [[call("search", query="a")], "done"]


def test_every_invoke_is_reported(dt: Dunetrace, ingest: Any) -> None:
    handler = dt_langchain.instrument(dt, agent_id="instrumented")
    assert isinstance(handler, DunetraceCallbackHandler)
    agent(SCRIPT).invoke(question("one"))
    agent(SCRIPT).batch([question("two"), question("three")])
    by_run = runs_of(delivered(dt, ingest, runs=3))
    assert len(by_run) == 3
    for events in by_run.values():
        well_formed(events)
        assert {e["agent_id"] for e in events} == {"instrumented"}
    assert handler.translator.live() == (0, 0)


async def test_every_ainvoke_is_reported(dt: Dunetrace, ingest: Any) -> None:
    dt_langchain.instrument(dt, agent_id="instrumented")
    await agent(SCRIPT).ainvoke(question())
    (events,) = runs_of(delivered(dt, ingest)).values()
    well_formed(events)
    assert sum(e["event_type"] == "tool.called" for e in events) == 1


def test_idempotent(dt: Dunetrace) -> None:
    before = list(lc_context._configure_hooks)
    first = dt_langchain.instrument(dt, agent_id="a")
    assert dt_langchain.instrument(dt, agent_id="a") is first
    assert len(lc_context._configure_hooks) == len(before) + 1
    assert dt.plugins.get_plugin(dt_langchain.PLUGIN_NAME) is not None


def test_uninstrument_restores_exactly(dt: Dunetrace, ingest: Any) -> None:
    before = list(lc_context._configure_hooks)
    dt_langchain.instrument(dt, agent_id="a")
    dt_langchain.uninstrument()
    dt_langchain.uninstrument()  # a second call is harmless
    assert lc_context._configure_hooks == before
    assert all(a is b for a, b in zip(lc_context._configure_hooks, before, strict=True))
    assert dt.plugins.get_plugin(dt_langchain.PLUGIN_NAME) is None
    agent(SCRIPT).invoke(question())
    dt.flush()
    assert ingest.events == []


def test_an_explicit_handler_is_not_doubled(dt: Dunetrace, ingest: Any) -> None:
    dt_langchain.instrument(dt, agent_id="global")
    explicit = DunetraceCallbackHandler(dt, agent_id="explicit")
    agent(SCRIPT).invoke(question(), config={"callbacks": [explicit]})
    (events,) = runs_of(delivered(dt, ingest)).values()
    well_formed(events)
    assert {e["agent_id"] for e in events} == {"explicit"}
    assert [e["event_type"] for e in events].count("llm.called") == 2


def test_instrumenting_again_with_another_client_replaces(dt: Dunetrace, ingest: Any) -> None:
    other = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    try:
        before = list(lc_context._configure_hooks)
        dt_langchain.instrument(other, agent_id="first")
        second = dt_langchain.instrument(dt, agent_id="second")
        assert len(lc_context._configure_hooks) == len(before) + 1
        assert other.plugins.get_plugin(dt_langchain.PLUGIN_NAME) is None
        agent(SCRIPT).invoke(question())
        (events,) = runs_of(delivered(dt, ingest)).values()
        assert {e["agent_id"] for e in events} == {"second"}
        assert second.client is dt
    finally:
        other.shutdown()


def test_shutdown_uninstruments(ingest: Any) -> None:
    before = list(lc_context._configure_hooks)
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    dt_langchain.instrument(client, agent_id="a")
    client.shutdown()
    assert lc_context._configure_hooks == before
    agent(SCRIPT).invoke(question())  # nothing attached any more; no error either
