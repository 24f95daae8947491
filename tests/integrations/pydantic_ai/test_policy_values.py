"""The values a user hands ``DunetraceCapability`` and its policies, as
properties: any model name a policy and ``models=`` agree on switches the
run's later requests; any message an ``inject_prompt`` policy holds reaches
the next request exactly once, as a user prompt part; anything but a
mapping or a function as ``models=`` is refused at the boundary."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dunetrace import Dunetrace
from dunetrace.integrations.pydantic_ai import DunetraceCapability, instrument, uninstrument

from .scripted import ROOM, Backup, Planner, agent, user_texts

non_blank = st.text(min_size=1, max_size=80).filter(lambda s: s.strip() != "")
policy_settings = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)


@pytest.fixture
def fresh_client() -> Iterator[Any]:
    """Builds an instrumented client per example (a client's policies stay
    for its life), sending nowhere; all are shut down after the test."""
    made: list[Dunetrace] = []

    def make() -> Dunetrace:
        client = Dunetrace(export="none")
        instrument(client, agent_id="hotel")
        made.append(client)
        return client

    yield make
    uninstrument()
    for client in made:
        client.shutdown(timeout=1)


@policy_settings
@given(name=non_blank, after=st.integers(min_value=1, max_value=3))
def test_any_model_name_in_models_switches_the_later_requests(fresh_client: Any, name: str, after: int) -> None:
    dt = fresh_client()
    dt.add_policy("switch", when={"tool_calls": after}, then={"switch_model": name})
    planner, backup = Planner(loops=4), Backup()
    output = agent(planner.model, DunetraceCapability(models={name: backup.model})).run_sync(ROOM).output
    assert output == "From the backup model: no room."
    assert len(planner.requests) == after and len(backup.requests) == 1


@policy_settings
@given(message=non_blank, after=st.integers(min_value=1, max_value=3))
def test_any_injected_message_reaches_the_next_request_once(fresh_client: Any, message: str, after: int) -> None:
    dt = fresh_client()
    dt.add_policy("nudge", when={"tool_calls": after}, then={"inject_prompt": message})
    planner = Planner(loops=4)
    agent(planner.model, DunetraceCapability()).run_sync(ROOM)
    counts = [user_texts(request)[1:].count(message) for request in planner.requests]
    assert counts == [0] * after + [1] * (len(planner.requests) - after)
    last_parts = [p for m in planner.requests[after] for p in m.parts]
    assert type(last_parts[-1]).__name__ == "UserPromptPart" and last_parts[-1].content == message


@given(
    value=st.one_of(st.integers(), st.text(), st.lists(st.text(), max_size=3), st.binary(), st.floats(allow_nan=False))
)
def test_models_must_be_a_mapping_or_a_function(value: Any) -> None:
    with pytest.raises(TypeError, match=r"DunetraceCapability\(models=...\)"):
        DunetraceCapability(models=value)


@given(value=st.one_of(st.integers(), st.text(), st.none().map(lambda _: object())))
def test_processor_must_be_a_span_processor(value: Any) -> None:
    with pytest.raises(TypeError, match=r"DunetraceCapability\(processor=...\)"):
        DunetraceCapability(processor=value)
