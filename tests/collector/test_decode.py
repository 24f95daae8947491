"""The ingest API's fast path (``decode.decode_batch``, msgspec) against the
contract's own checks (``schema.read_batch``), body by body: the fast path
may decline a valid body (the checks then take it) but must never take a
body the checks refuse, and what it takes it must group exactly as they do."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from dunetrace import Dunetrace
from dunetrace.collector.decode import AVAILABLE, decode_batch
from dunetrace.collector.schema import MAX_INT, BadRequest, Batch, parse_json, read_batch

from .wire import batch, event, tool_loop_run

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="msgspec is part of the collector extra")

FIELDS = (
    "event_type",
    "run_id",
    "agent_id",
    "agent_version",
    "step_index",
    "timestamp",
    "payload",
    "parent_run_id",
    "event_id",
)
#: A value of each JSON kind, and the edges the contract draws.
VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1.0,
    1.5,
    "",
    "x",
    [],
    {},
    [1],
    {"a": 1},
    MAX_INT,
    MAX_INT + 1,
    2**64,
    10**30,
    "run.completed",
    "nope",
    1e300,
]


def checked(body: bytes) -> Batch | None:
    try:
        return read_batch(parse_json(body))[2]
    except BadRequest:
        return None


def same(a: Batch, b: Batch) -> bool:
    def norm(x: Batch) -> Any:
        runs = {
            run_id: [
                *run[:3],
                float(run[3]),
                float(run[4]),
                *run[5:9],
                [[*row[:5], float(row[5]), *row[6:]] for row in run[9]],
            ]
            for run_id, run in x.runs.items()
        }
        return x.count, x.ids, runs

    return bool(norm(a) == norm(b))


def mutations() -> list[bytes]:
    """Valid bodies and bodies broken one field at a time."""
    good = batch(tool_loop_run("r1") + tool_loop_run("r2", agent="agent-b"))
    bodies = [json.dumps(good).encode()]
    for i in (0, 3):
        for name in FIELDS:
            for value in VALUES:
                body = json.loads(json.dumps(good))
                body["events"][i][name] = value
                bodies.append(json.dumps(body).encode())
            body = json.loads(json.dumps(good))
            del body["events"][i][name]
            bodies.append(json.dumps(body).encode())
        body = json.loads(json.dumps(good))
        body["events"][i]["extra"] = {"kept": "aside"}
        bodies.append(json.dumps(body).encode())
    for name in ("api_key", "agent_id", "events"):
        for value in VALUES:
            body = json.loads(json.dumps(good))
            body[name] = value
            bodies.append(json.dumps(body).encode())
    raw = json.dumps(good).encode()
    bodies += [
        b"",
        b"[]",
        b"{}",
        raw[:-1],  # truncated
        b"\xef\xbb\xbf" + raw,  # a byte-order mark
        raw.replace(b'"run_id": "r1"', b'"run_id": "r1", "run_id": ""', 1),  # a key twice: the last one counts
        raw.replace(b'"run_id": "r1"', b'"run_id": "\\ud800"', 1),  # a lone surrogate
        raw.replace(b'"step_index": 0', b'"step_index": 0e0', 1),
        raw.replace(b'"timestamp": 1700000000.0', b'"timestamp": 1700000000', 1),
        json.dumps({**good, "events": [event("llm.called", step=s) for s in range(501)]}).encode(),
        json.dumps({**good, "events": [event("llm.called", step=s) for s in range(500)]}).encode(),
        json.dumps({**good, "events": ["not an event"]}).encode(),
    ]
    return bodies


@pytest.mark.parametrize("body", mutations(), ids=lambda b: hashlib.sha1(b).hexdigest()[:12])
def test_the_fast_path_takes_nothing_the_contract_refuses(body: bytes) -> None:
    fast = decode_batch(body)
    slow = checked(body)
    if slow is None:
        assert fast is None
    elif fast is not None:
        assert same(fast[1], slow)
        assert fast[0] == json.loads(body).get("api_key", "")


def test_the_fast_path_takes_what_the_sdk_sends() -> None:
    """The bodies the SDK sends go the fast way (else it would be no faster)."""
    bodies: list[bytes] = []
    dt = Dunetrace(export="none")
    from dunetrace.export import ExportBatch, ExportResult
    from dunetrace.plugins import hookimpl

    class Keep:
        @hookimpl
        def dunetrace_export(self, batch: ExportBatch) -> ExportResult:
            bodies.append(batch.body)
            return ExportResult.ok()

    dt.plugins.register(Keep())
    with dt.run("agent-a", model="m", tools=["search"]) as run:
        step = run.llm_called("m", prompt_tokens=10)
        run.llm_responded(5, 12.5, "tool_calls", 40, step=step)
        step = run.tool_called("search", {"q": "x"})
        run.tool_responded("search", False, error=ValueError("no"), step=step)
        run.final_answer()
    assert dt.flush(5)
    dt.shutdown()
    assert bodies
    for body in bodies:
        fast = decode_batch(body)
        assert fast is not None
        slow = checked(body)
        assert slow is not None and same(fast[1], slow)
        assert fast[1].count == len(json.loads(body)["events"])
