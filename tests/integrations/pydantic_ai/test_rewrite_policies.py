"""``switch_model`` and ``inject_prompt`` on real Pydantic AI agents given
``DunetraceCapability``, with scripted models and no network: the later
requests go to the other model, the injected text reaches the next request
once and never the wire; ``stop`` still works; concurrent and nested runs
keep apart; ``uninstrument()`` puts everything back."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic_ai import Agent, RunContext
from pydantic_ai.messages import ModelResponse, ToolCallPart
from pydantic_ai.models.function import FunctionModel

from dunetrace import Dunetrace, PolicyViolation
from dunetrace.integrations.pydantic_ai import DunetraceCapability, instrument, uninstrument
from tests.ingest_server import IngestServer
from tests.integrations.llamaindex.recorded import by_run, only, well_formed

from .scripted import BREAKFAST, ROOM, Backup, Planner, agent, parts, user_texts

SENTINEL = "SENTINEL-7f3a91-never-on-the-wire"


@pytest.fixture
def dt(ingest: IngestServer) -> Iterator[Dunetrace]:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    instrument(client, agent_id="hotel")
    yield client
    uninstrument()
    client.shutdown(timeout=5)


def _models(events: list[dict[str, Any]]) -> list[str]:
    return [e["payload"]["model"] for e in only(events, "llm.called")]


def test_switch_model_sends_the_later_requests_to_the_other_model(dt: Dunetrace, received: Any) -> None:
    dt.add_policy("cheaper", when={"tool_calls": 2}, then={"switch_model": "backup"})
    planner, backup = Planner(loops=5), Backup()
    hotel = agent(planner.model, DunetraceCapability(models={"backup": backup.model}))
    assert hotel.run_sync(ROOM).output == "From the backup model: no room."
    assert len(planner.requests) == 2  # the third request went to the backup
    assert len(backup.requests) == 1
    # The backup got the whole conversation: both tool calls and their returns.
    assert sum(type(p).__name__ == "ToolReturnPart" for m in backup.requests[0] for p in m.parts) == 2
    events = received()
    well_formed(events)
    assert _models(events) == ["offline-planner", "offline-planner", "backup-model"]
    triggered = [
        e["payload"] for e in only(events, "external.signal") if e["payload"]["signal_name"] == "POLICY_TRIGGERED"
    ]
    assert [(t["evidence"]["action"], t["evidence"]["model"]) for t in triggered] == [("switch_model", "backup")]
    assert events[-1]["event_type"] == "run.completed"


def test_a_name_is_resolved_as_pydantic_ai_resolves_one(dt: Dunetrace, received: Any) -> None:
    # No models=: infer_model, as Agent("test") does ("test" is Pydantic AI's TestModel).
    dt.add_policy("to-test", when={"tool_calls": 1}, then={"switch_model": "test"})
    planner = Planner(loops=5)
    result = agent(planner.model, DunetraceCapability()).run_sync(ROOM)
    assert len(planner.requests) == 1
    assert not result.output.startswith("Sorry")  # TestModel answered, not the planner
    models = _models(received())
    assert models[0] == "offline-planner" and len(models) >= 2 and set(models[1:]) == {"test"}


def test_a_mapping_may_name_a_model_and_a_function_may_build_one(dt: Dunetrace, received: Any) -> None:
    dt.add_policy("by-name", when={"tool_calls": 1}, then={"switch_model": "cheap"})
    backup = Backup()
    asked: list[str] = []

    def build(name: str) -> Any:
        asked.append(name)
        return backup.model

    by_mapping = Planner(loops=3)
    agent(by_mapping.model, DunetraceCapability(models={"cheap": "test"})).run_sync(ROOM)
    by_function = Planner(loops=3)
    capability = DunetraceCapability(models=build)
    assert agent(by_function.model, capability).run_sync(ROOM).output.startswith("From the backup")
    assert agent(Planner(loops=3).model, capability).run_sync(ROOM).output.startswith("From the backup")
    assert asked == ["cheap"]  # resolved once per capability, then reused
    assert len(by_mapping.requests) == len(by_function.requests) == 1
    runs = list(by_run(received()).values())
    assert [_models(run)[-1] for run in runs] == ["test", "backup-model", "backup-model"]


def test_a_name_that_cannot_be_resolved_keeps_the_model_and_warns_once(
    dt: Dunetrace, received: Any, caplog: pytest.LogCaptureFixture
) -> None:
    dt.add_policy("cheaper", when={"tool_calls": 1}, then={"switch_model": "nowhere"})
    capability = DunetraceCapability(models={"backup": Backup().model})
    with caplog.at_level(logging.WARNING, logger="dunetrace"):
        for _ in range(2):
            assert agent(Planner(loops=3).model, capability).run_sync(ROOM).output.startswith("Sorry")
    warned = [r.getMessage() for r in caplog.records if "switch_model to 'nowhere'" in r.getMessage()]
    assert len(warned) == 1 and "['backup']" in warned[0]
    assert set(_models(received())) == {"offline-planner"}


def test_inject_prompt_reaches_the_next_request_once_and_never_the_wire(
    dt: Dunetrace, received: Any, ingest: IngestServer
) -> None:
    nudge = f"Stop checking; answer now. {SENTINEL}"
    dt.add_policy("nudge", when={"tool_calls": 2}, then={"inject_prompt": nudge})
    planner = Planner(loops=4)
    result = agent(planner.model, DunetraceCapability()).run_sync(ROOM)
    assert [user_texts(request).count(nudge) for request in planner.requests] == [0, 0, 1, 1, 1]
    # Added once, right after the second tool's return, as a user prompt part...
    assert parts(planner.requests[2])[-2:] == [
        ("ToolReturnPart", parts(planner.requests[2])[-2][1]),
        ("UserPromptPart", nudge),
    ]
    # ...and kept in the conversation, once.
    assert sum(getattr(p, "content", None) == nudge for m in result.all_messages() for p in m.parts) == 1
    events = received()
    well_formed(events)
    assert events[-1]["event_type"] == "run.completed"
    assert SENTINEL.encode() not in ingest.raw()
    assert b"Stop checking" not in ingest.raw()


def test_stop_still_refuses_the_next_call_with_the_capability_on(dt: Dunetrace, received: Any) -> None:
    dt.add_policy("cap", when={"tool_calls": 2}, then="stop")
    planner = Planner(loops=5)
    with pytest.raises(PolicyViolation, match="cap"):
        agent(planner.model, DunetraceCapability()).run_sync(ROOM)
    assert len(planner.requests) == 2
    events = received()
    assert events[-1]["event_type"] == "run.errored"
    assert events[-1]["payload"]["error_type"] == "PolicyViolation"


async def test_concurrent_runs_in_asyncio_tasks_keep_apart(dt: Dunetrace, received: Any) -> None:
    dt.add_policy("cheaper", when={"tool_calls": 2, "tool": "check_room"}, then={"switch_model": "backup"})
    dt.add_policy("nudge", when={"tool_calls": 1, "tool": "check_room"}, then={"inject_prompt": SENTINEL})
    planner, backup = Planner(loops=4, pause=True), Backup()
    shared = agent(planner.model, DunetraceCapability(models={"backup": backup.model}))
    questions = [ROOM, BREAKFAST, ROOM, BREAKFAST]
    results = await asyncio.gather(*(shared.run(q) for q in questions))
    assert [r.output for r in results] == ["From the backup model: no room.", "Breakfast is from 7:00."] * 2
    # Only the room runs were switched and nudged, each once.
    assert len(backup.requests) == 2
    for request in backup.requests:
        assert user_texts(request)[0] == ROOM and user_texts(request).count(SENTINEL) == 1
    for request in planner.requests:
        if user_texts(request)[0] == BREAKFAST:
            assert SENTINEL not in user_texts(request)
    runs = list(by_run(received()).values())
    assert len(runs) == 4
    for events in runs:
        well_formed(events)
    assert sorted(_models(events)[-1] for events in runs) == ["backup-model"] * 2 + ["offline-planner"] * 2


def test_a_child_agent_run_from_a_tool_keeps_its_own_model(dt: Dunetrace, received: Any) -> None:
    dt.add_policy("cheaper", when={"tool_calls": 1, "tool": "ask_concierge"}, then={"switch_model": "backup"})
    concierge_model, backup = Planner(loops=0, name="concierge-model"), Backup()
    capability = DunetraceCapability(models={"backup": backup.model})
    concierge = agent(concierge_model.model, capability, name="concierge")

    async def ask_concierge(ctx: RunContext[None], question: str) -> str:
        """Ask the concierge."""
        return (await concierge.run(question)).output

    def front_desk(messages: Any, info: Any) -> Any:
        return ModelResponse(parts=[ToolCallPart("ask_concierge", {"question": BREAKFAST})])

    desk = Agent(
        FunctionModel(front_desk, model_name="desk"), tools=[ask_concierge], name="desk", capabilities=[capability]
    )
    assert desk.run_sync("Breakfast?").output == "From the backup model: no room."
    # The child's own two requests went to its model; the parent's second to the backup.
    assert len(concierge_model.requests) == 2 and len(backup.requests) == 1
    runs = by_run(received())
    assert len(runs) == 2
    child = next(events for events in runs.values() if events[0]["parent_run_id"])
    parent = next(events for events in runs.values() if not events[0]["parent_run_id"])
    assert _models(child) == ["concierge-model", "concierge-model"]
    assert _models(parent) == ["desk", "backup-model"]


def test_uninstrument_puts_everything_back(
    dt: Dunetrace, ingest: IngestServer, caplog: pytest.LogCaptureFixture
) -> None:
    dt.add_policy("cheaper", when={"tool_calls": 1}, then={"switch_model": "backup"})
    dt.add_policy("nudge", when={"tool_calls": 1}, then={"inject_prompt": SENTINEL})
    listeners = len(dt._listeners)
    uninstrument()
    assert Agent._instrument_default is False
    assert len(dt._listeners) == listeners - 1
    planner, backup = Planner(loops=3), Backup()
    with caplog.at_level(logging.WARNING, logger="dunetrace"):
        output = agent(planner.model, DunetraceCapability(models={"backup": backup.model})).run_sync(ROOM).output
    assert output.startswith("Sorry") and backup.requests == [] and len(planner.requests) == 4
    assert all(SENTINEL not in user_texts(r) for r in planner.requests)
    assert any("nothing reports its runs" in r.getMessage() for r in caplog.records)
    assert dt.flush(5) and ingest.events == []


async def test_a_streamed_run_is_switched_and_nudged_too(dt: Dunetrace, received: Any) -> None:
    from pydantic_ai.models.function import DeltaToolCall

    dt.add_policy("cheaper", when={"tool_calls": 1}, then={"switch_model": "backup"})
    dt.add_policy("nudge", when={"tool_calls": 1}, then={"inject_prompt": SENTINEL})
    heard: list[list[str]] = []

    async def planner(messages: Any, info: Any) -> Any:
        yield {0: DeltaToolCall(name="breakfast_hours", json_args="{}")}

    async def backup(messages: Any, info: Any) -> Any:
        heard.append(user_texts(messages))
        for word in ("Breakfast ", "at ", "seven."):
            yield word

    capability = DunetraceCapability(models={"backup": FunctionModel(stream_function=backup, model_name="streamed")})
    hotel = agent(FunctionModel(stream_function=planner, model_name="planner"), capability)
    async with hotel.run_stream(BREAKFAST) as result:
        assert await result.get_output() == "Breakfast at seven."
    assert heard == [[BREAKFAST, SENTINEL]]
    assert _models(received()) == ["planner", "streamed"]


def test_an_agent_with_its_own_provider_names_its_processor(ingest: IngestServer) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from pydantic_ai.models.instrumented import InstrumentationSettings

    from dunetrace.integrations.otel import DunetraceSpanProcessor

    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    try:
        client.add_policy("cheaper", when={"tool_calls": 2}, then={"switch_model": "backup"})
        provider = TracerProvider()
        provider._disabled = False  # the suite sets OTEL_SDK_DISABLED
        processor = DunetraceSpanProcessor(client, "own-provider")
        provider.add_span_processor(processor)
        planner, backup = Planner(loops=5), Backup()
        hotel = agent(planner.model, DunetraceCapability(models={"backup": backup.model}, processor=processor))
        hotel.instrument = InstrumentationSettings(tracer_provider=provider)
        assert hotel.run_sync(ROOM).output.startswith("From the backup")
        assert len(planner.requests) == 2
        assert client.flush(5)
        assert _models(ingest.events) == ["offline-planner", "offline-planner", "backup-model"]
        assert {e["agent_id"] for e in ingest.events} == {"own-provider"}
    finally:
        client.shutdown(timeout=5)
