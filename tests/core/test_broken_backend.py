"""A broken backend never stalls or poisons delivery: a real HTTP server on
127.0.0.1 that drips its answer, refuses bodies as too large (413), refuses
events as invalid (422, in our collector's words, the upstream backend's,
or none), or answers 2xx without the contract's body."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dunetrace import Dunetrace, hookimpl
from tests.core.test_delivery import assert_runs_in_order, emit_run
from tests.ingest_server import IngestServer


def test_a_dripping_answer_is_cut_at_the_deadline_and_nothing_waits_behind_it(ingest: IngestServer) -> None:
    ingest.script.append((-2, {"every": "1"}))  # the first answer: one byte a second (~60 s)
    client = Dunetrace(endpoint=ingest.url, request_timeout=1.5, flush_interval=0.02, initial_backoff=0.05)
    start = time.monotonic()
    first = emit_run(client, "a", 1)
    assert ingest.wait_for(lambda _: len(ingest.requests) >= 1, timeout=5)
    emit_start = time.perf_counter()
    later = [emit_run(client, "a", 250) for _ in range(4)]  # 2,008 events while the first request drips
    assert time.perf_counter() - emit_start < 1.0  # the agent never waits for the network
    assert client.flush(10)
    elapsed = time.monotonic() - start
    assert 1.4 < elapsed < 4.0, elapsed  # cut at 1.5 s, retried, delivered; not 60 s
    events = ingest.events
    assert [e["run_id"] for e in events if e["event_type"] == "run.started"] == [first, *later]
    assert len(events) == 4 + 4 * 502 and len({e["event_id"] for e in events}) == len(events)
    assert_runs_in_order(events)
    stats = client.stats()
    assert stats["retries"] == 1 and stats["dropped_total"] == 0
    client.shutdown(1)


def test_the_deadline_is_total_not_per_read(ingest: IngestServer) -> None:
    # Each byte comes well within httpx's per-read timeout (1.5 s); only a
    # deadline on the whole request can cut this answer.
    ingest.script.append((-2, {"every": "0.3"}))
    client = Dunetrace(endpoint=ingest.url, request_timeout=1.5, flush_interval=0.02, initial_backoff=0.05)
    start = time.monotonic()
    emit_run(client, "a", 1)
    assert ingest.wait_for(lambda _: len(ingest.requests) >= 2, timeout=10)
    assert time.monotonic() - start < 1.5 + 0.5 + 0.5  # deadline, backoff, slack; the drip takes ~20 s
    assert client.flush(5) and len(ingest.events) == 4
    client.shutdown(1)


def test_413_halves_the_batch_down_to_the_single_event_refused(
    ingest: IngestServer, caplog: pytest.LogCaptureFixture
) -> None:
    ingest.max_body = 3_000  # a batch of ~8 ordinary events fits; the big signal never does
    client = Dunetrace(endpoint=ingest.url, flush_interval=30)  # one backlog, drained at shutdown
    with caplog.at_level(logging.WARNING, logger="dunetrace"):
        with client.run("a") as run:
            for i in range(30):
                step = run.tool_called("search", {"i": i})
                run.tool_responded("search", True, step=step)
                if i in (7, 21):
                    run.external_signal("dump", blob="x" * 5_000)
        assert client.flush(10)
    events = ingest.events
    assert len(events) == 62 and not any(e["event_type"] == "external.signal" for e in events)
    assert_runs_in_order(events)
    assert [e["step_index"] for e in events if e["event_type"] == "tool.called"] == list(range(1, 31))
    assert client.stats()["dropped"] == {"payload_too_large": 2}
    assert caplog.text.count("refused a single external.signal event as too large") == 1
    assert all(len(body) <= 3_000 for body in ingest.bodies)
    # What was refused is remembered: later batches are cut to fit before
    # they are sent, not refused once each.
    refused = len(ingest.refusals)
    emit_run(client, "a", 200)
    assert client.shutdown(10)
    assert len(ingest.events) == 62 + 402 and len(ingest.refusals) <= refused + 2, ingest.refusals
    assert_runs_in_order(ingest.events)


class RenameFlakyCalls:
    """A third-party plugin with a bug: it renames some events to a type the
    contract does not have, so the ingest API refuses them (422)."""

    @hookimpl
    def dunetrace_event(self, event: dict[str, Any]) -> None:
        if event["payload"].get("tool_name") == "flaky" and event["event_type"] == "tool.called":
            event["event_type"] = "tool.invoked"


def collector_words(body: bytes) -> tuple[int, Any] | None:
    """Our collector's check and its 422 answer (collector/schema.py)."""
    from collector.schema import BadRequest, read_batch

    try:
        read_batch(json.loads(body))
    except BadRequest as exc:
        return 422, exc.to_dict()
    return None


def upstream_words(body: bytes) -> tuple[int, Any] | None:
    """The upstream ingest service's request model and FastAPI's 422 answer
    for it (``{"detail": [{"loc": ["body", ...], "msg", ...}]}``)."""
    from pydantic import ValidationError

    from tests.upstream.backend import backend_dir

    ingest_dir = str(backend_dir() / "services" / "ingest")
    if ingest_dir not in sys.path:
        sys.path.append(ingest_dir)
    from ingest_svc.schemas import IngestRequest

    try:
        IngestRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = [{"type": e["type"], "loc": ["body", *e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        return 422, {"detail": errors}
    return None


def bare_words(body: bytes) -> tuple[int, Any] | None:
    """A service that says only that the batch is invalid."""
    if collector_words(body) is None:
        return None
    return 422, {"detail": "invalid batch"}


@pytest.mark.parametrize("words", [collector_words, upstream_words, bare_words], ids=["collector", "upstream", "bare"])
def test_422_drops_only_the_offending_events_and_names_them_once(
    ingest: IngestServer, caplog: pytest.LogCaptureFixture, words: Any
) -> None:
    ingest.validate = words
    client = Dunetrace(endpoint=ingest.url, flush_interval=30)  # one backlog, drained at shutdown
    client.plugins.register(RenameFlakyCalls())
    tools = ["search", "flaky", "search", "search", "flaky", "fetch"] * 20
    with caplog.at_level(logging.WARNING, logger="dunetrace"):
        with client.run("a") as run:
            for name in tools:
                step = run.tool_called(name, {"q": 1})
                run.tool_responded(name, True, step=step)
        assert client.shutdown(10)
    events = ingest.events
    assert len(events) == 2 + 2 * len(tools) - 40
    assert not any(e["event_type"] == "tool.invoked" for e in events)
    assert_runs_in_order(events)
    stats = client.stats()
    assert stats["dropped"] == {"rejected": 40} and stats["sent"] == len(events)
    assert caplog.text.count("refused a tool.invoked event as invalid (HTTP 422") == 1
    if words is not bare_words:
        assert "field 'event_type'" in caplog.text
        # the answer named the events: no halving, a few requests, not dozens
        assert len(ingest.requests) <= 10, len(ingest.requests)


def test_a_2xx_without_the_contracts_body_is_delivered_and_warned_once(
    ingest: IngestServer, caplog: pytest.LogCaptureFixture
) -> None:
    ingest.script.extend([(200, {"x-raw": "<html>welcome</html>"})] * 2)
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.02)
    with caplog.at_level(logging.WARNING, logger="dunetrace"):
        emit_run(client, "a", 1)
        assert client.flush(5)
        emit_run(client, "a", 1)
        assert client.flush(5)
        emit_run(client, "a", 1)  # answered as the contract says
        assert client.flush(5)
    stats = client.stats()
    assert stats["sent"] == 12 and stats["unconfirmed"] == 8 and stats["dropped_total"] == 0
    assert caplog.text.count("without the ingest API's confirmation") == 1
    assert "<html>welcome" in caplog.text
    client.shutdown(1)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
locs = st.sampled_from(["body", "events", "payload"]) | st.text(max_size=8) | st.integers()
event_locs = st.tuples(st.just("body"), st.just("events"), st.integers(), st.text(max_size=8)).map(list)
pydantic_errors = st.fixed_dictionaries({"loc": st.lists(locs, max_size=5) | event_locs, "msg": st.text()})
answers = st.one_of(
    json_values,
    st.fixed_dictionaries({"detail": st.text(), "field": st.text() | st.from_regex(r"events\[\d{1,4}\](\.\w+)?")}),
    st.fixed_dictionaries({"detail": st.lists(pydantic_errors, max_size=5)}),
)


@settings(max_examples=300, deadline=None)
@given(answer=answers | st.binary(max_size=64).map(lambda b: {"raw": b.hex()}))
def test_any_422_answer_reads_as_indices_and_fields_or_nothing(answer: Any) -> None:
    """Whatever a server puts in a 422, reading it never raises, and what
    it yields is (index or None, a short field, a short message)."""
    from dunetrace.rejection import rejected_events

    for body in (json.dumps(answer).encode(), json.dumps(answer).encode()[:-1], b"\xff" + json.dumps(answer).encode()):
        for index, field, message in rejected_events(body):
            assert index is None or (type(index) is int and index >= 0)
            assert isinstance(field, str) and len(field) <= 100
            assert isinstance(message, str) and len(message) <= 200
