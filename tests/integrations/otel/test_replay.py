"""The collector's /v1/traces replay, against any tree of GenAI spans, sent
as an exporter sends them (as they end, in batches of any size, in any order
within a batch): one run per agent span, every run well-formed, every tool
call reported once."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integrations.llamaindex.recorded import well_formed

_ids = itertools.count(1)

# A tree: (kind, children); only agent spans have children here, as emitters nest them.
trees = st.recursive(
    st.sampled_from([("chat", ()), ("tool", ())]),
    lambda inner: st.tuples(st.just("agent"), st.lists(inner, max_size=4).map(tuple)),
    max_leaves=10,
)


def _flatten(tree: Any, trace: str, parent: str, start: int, out: list[dict[str, Any]]) -> int:
    """OTLP/JSON spans of ``tree``, children one after another inside their
    parent's time; returns its end."""
    kind, children = tree
    span_id = f"{next(_ids):016x}"
    clock = start + 1
    for child in children:
        clock = _flatten(child, trace, span_id, clock, out) + 1
    operation = {"agent": "invoke_agent", "chat": "chat", "tool": "execute_tool"}[kind]
    attributes = [{"key": "gen_ai.operation.name", "value": {"stringValue": operation}}]
    if kind == "tool":
        attributes.append({"key": "gen_ai.tool.name", "value": {"stringValue": "t"}})
    span = {
        "traceId": trace,
        "spanId": span_id,
        "name": operation,
        "attributes": attributes,
        "status": {},
        "startTimeUnixNano": str(1_700_000_000_000_000_000 + start * 1000),
        "endTimeUnixNano": str(1_700_000_000_000_000_000 + clock * 1000),
    }
    if parent:
        span["parentSpanId"] = parent
    out.append(span)
    return clock


def _count(tree: Any, kind: str) -> int:
    return (tree[0] == kind) + sum(_count(child, kind) for child in tree[1])


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from dunetrace.collector.app import Collector
    from dunetrace.collector.otlp import TraceReceiver
    from dunetrace.collector.settings import Settings

    collector = Collector(Settings(db_path=str(Path(tmp_path_factory.mktemp("replay")) / "replay.db")))
    collector.start()
    receiver = TraceReceiver(collector, trace_idle=3600)
    yield receiver
    receiver.stop()
    collector.close()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(children=st.lists(trees, max_size=4), seed=st.integers(0, 2**32 - 1), cuts=st.integers(1, 3))
def test_any_tree_in_any_batches(receiver: Any, children: list[Any], seed: int, cuts: int) -> None:
    from dunetrace.collector.otlp import decode_json

    tree = ("agent", tuple(children))
    service = f"svc-{next(_ids)}"
    spans: list[dict[str, Any]] = []
    _flatten(tree, f"{next(_ids):032x}", "", 0, spans)
    # An exporter sends spans as they end (children before their parent),
    # in batches; the order within a batch is anything.
    spans.sort(key=lambda span: int(span["endTimeUnixNano"]))
    size = max(1, len(spans) // cuts)
    for part in range(0, len(spans), size):
        batch = spans[part : part + size]
        random.Random(seed).shuffle(batch)
        body = {
            "resourceSpans": [
                {
                    "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
                    "scopeSpans": [{"spans": batch}],
                }
            ]
        }
        receiver.receive(decode_json(json.dumps(body).encode()))
    store = receiver.collector.store
    # With or without signals (None): the looping ones get TOOL_LOOP. Child
    # runs of agents without names share the root's agent_id.
    runs = store.runs(service, None, 500, 0)[0]
    assert len(runs) == _count(tree, "agent")
    tools = 0
    for run in runs:
        events = store.run_events(run["run_id"])
        well_formed(events)
        tools += sum(e["event_type"] == "tool.called" for e in events)
    assert tools == _count(tree, "tool")
