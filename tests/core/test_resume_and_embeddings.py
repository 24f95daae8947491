"""The shared vocabulary the integrations use: exit reasons, a resumed run
naming the run it resumes, and embedding calls inside a run."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dunetrace import Dunetrace
from dunetrace import exit_reasons as reasons
from dunetrace.detectors import ANSWERED_EXIT_REASONS
from tests.ingest_server import IngestServer


def sent(ingest: IngestServer, dt: Dunetrace) -> list[dict[str, Any]]:
    dt.shutdown(timeout=5)
    return ingest.events


def test_a_resumed_run_names_the_run_it_resumes(ingest: IngestServer) -> None:
    dt = Dunetrace(endpoint=ingest.url)
    with dt.run("desk", user_input="first", model="m", tools=["ask"]) as first:
        first.exit_reason = reasons.INTERRUPTED
    with dt.run("desk", user_input="yes", model="m", tools=["ask"], resumed_from=first.run_id) as second:
        pass
    events = sent(ingest, dt)
    started = {e["run_id"]: e for e in events if e["event_type"] == "run.started"}
    assert "resumed_from" not in started[first.run_id]["payload"]
    assert started[second.run_id]["payload"]["resumed_from"] == first.run_id
    # Same configuration, same version; not a child of the run it resumes.
    assert started[second.run_id]["agent_version"] == started[first.run_id]["agent_version"]
    assert started[second.run_id]["parent_run_id"] is None
    ended = {e["run_id"]: e["payload"]["exit_reason"] for e in events if e["event_type"] == "run.completed"}
    assert ended == {first.run_id: "interrupted", second.run_id: "completed"}


@given(value=st.one_of(st.just(""), st.integers(), st.binary(), st.lists(st.text()), st.floats()))
@settings(max_examples=40, deadline=None)
def test_a_bad_resumed_from_is_a_clear_error(value: Any) -> None:
    dt = Dunetrace(endpoint="http://127.0.0.1:9", export="none")
    try:
        with pytest.raises(ValueError, match=r"dt.run\(resumed_from=...\) must be the run_id"):
            dt.run("a", resumed_from=value)
    finally:
        dt.shutdown(timeout=1)


def test_an_embedding_is_an_external_signal_without_text(ingest: IngestServer) -> None:
    dt = Dunetrace(endpoint=ingest.url)
    with dt.run("rag") as run:
        step = run.tool_called("search", {"q": "x"})
        run.embedding("text-embedding-3-small", 3, 12.5, input_tokens=40, source="openai")
        run.tool_responded("search", True, step=step)
    events = sent(ingest, dt)
    [signal] = [e for e in events if e["event_type"] == "external.signal"]
    assert signal["payload"] == {
        "signal_name": "EMBEDDING",
        "source": "openai",
        "model": "text-embedding-3-small",
        "input_count": 3,
        "latency_ms": 12.5,
        "input_tokens": 40,
        "success": True,
    }
    assert signal["step_index"] == 1  # an embedding is not a step of its own
    assert [e["step_index"] for e in events if e["event_type"] == "tool.responded"] == [1]


@given(
    model=st.one_of(st.none(), st.text(), st.integers(), st.binary()),
    count=st.one_of(st.none(), st.integers(), st.floats(), st.text()),
    latency=st.one_of(st.none(), st.floats(allow_nan=True), st.integers(), st.text()),
    tokens=st.one_of(st.none(), st.integers(), st.floats()),
)
@settings(max_examples=60, deadline=None)
def test_an_embedding_with_any_values_never_raises(model: Any, count: Any, latency: Any, tokens: Any) -> None:
    dt = Dunetrace(endpoint="http://127.0.0.1:9", export="none")
    seen = Seen()
    dt.add_watcher(seen)
    with dt.run("rag") as run:
        run.embedding(model, count, latency, input_tokens=tokens)
    dt.shutdown(timeout=1)
    [payload] = [p for kind, p in seen.events if kind == "external.signal"]
    assert payload["signal_name"] == "EMBEDDING"
    for field, value in (("input_count", count), ("input_tokens", tokens)):
        if field in payload:
            assert isinstance(payload[field], int) and payload[field] >= 0, (field, value)


class Seen:
    """A watcher: every event of every run, as the run emitted it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def observe(self, run: Any, event_type: str, step: int, payload: dict[str, Any]) -> None:
        self.events.append((event_type, payload))


def test_the_vocabulary_is_one_list_and_only_two_endings_are_answers() -> None:
    assert reasons.EXIT_REASONS == (
        "final_answer",
        "completed",
        "interrupted",
        "cancelled",
        "abandoned",
        "guardrail",
        "max_iterations",
    )
    assert ANSWERED_EXIT_REASONS == reasons.ANSWERED == {"final_answer", "completed"}
