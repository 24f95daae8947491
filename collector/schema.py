"""The ingest contract, checked: what makes a batch or a deploy marker a 422.

Errors name the field that is wrong (``events[3].step_index``) so an SDK
author can find the bug from the answer alone. This module decides what is
valid; the ingest API first tries ``decode.decode_batch``, the same rules
checked in C, and comes here for what that refuses.
"""

from __future__ import annotations

from typing import Any

from . import _json
from .settings import MAX_EVENTS_PER_BATCH

__all__ = [
    "EVENT_TYPES",
    "ROW_FIELDS",
    "TERMINAL",
    "BadRequest",
    "Batch",
    "group",
    "parse_json",
    "read_batch",
    "read_events",
    "validate_deploy",
]

EVENT_TYPES = frozenset(
    (
        "run.started",
        "run.completed",
        "run.errored",
        "llm.called",
        "llm.responded",
        "tool.called",
        "tool.responded",
        "retrieval.called",
        "retrieval.responded",
        "external.signal",
    )
)
TERMINAL = frozenset(("run.completed", "run.errored"))
_IDS = ("run_id", "agent_id", "agent_version")
#: SQLite's largest integer; a step index above it is garbage, not a 500.
MAX_INT = 2**63 - 1


class BadRequest(Exception):
    """A 422: ``field`` is where, ``message`` says what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        return {"detail": f"{self.field}: {self.message}", "field": self.field}


def parse_json(body: bytes) -> Any:
    if not body:
        raise BadRequest("body", "empty body; send a JSON object")
    try:
        return _json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise BadRequest("body", f"not valid JSON ({str(exc)[:120]})") from None


def _string(value: Any, field: str, *, empty: bool = False) -> str:
    if not isinstance(value, str):
        raise BadRequest(field, "must be a string")
    if not empty and not value:
        raise BadRequest(field, "must not be empty")
    return value


class Batch:
    """A checked batch, grouped by run in the same pass that checked it.

    ``runs`` maps a run id to what the store learns of that run from this
    batch: ``[agent_id, agent_version, parent_run_id, first_ts, last_ts,
    end_type, exit_reason, error_type, steps, rows]``, where ``rows`` are
    the run's events in the store's row form, in arrival order (see
    ``ROW_FIELDS``). ``ids`` are the event ids given, in order; ``count``
    the number of events.
    """

    __slots__ = ("count", "ids", "runs")

    def __init__(self, count: int, runs: dict[str, list[Any]], ids: list[str]) -> None:
        self.count = count
        self.runs = runs
        self.ids = ids


#: An event as the store keeps it: a row of these fields, the run id aside.
ROW_FIELDS = (
    "event_id",
    "event_type",
    "agent_id",
    "agent_version",
    "step_index",
    "timestamp",
    "parent_run_id",
    "payload",
)


def read_events(events: list[Any]) -> Batch:
    """Check every event, then group them by run.

    The ingest API checks a valid body in C first (``decode.decode_batch``);
    this loop decides what that refused, and ``Store.ingest`` uses it. Each
    event is checked by one condition and only an event that fails it goes
    through the field-by-field check that names what is wrong.
    """
    checked: list[tuple[Any, ...]] = []
    types = EVENT_TYPES
    for event in events:
        try:
            kind = event["event_type"]
            run_id = event["run_id"]
            agent = event["agent_id"]
            version = event["agent_version"]
            step = event["step_index"]
            ts = event["timestamp"]
            payload = event["payload"]
        except (KeyError, TypeError):  # TypeError: not a dict
            raise _event_error(events, event) from None
        parent = event.get("parent_run_id")
        event_id = event.get("event_id")
        if not (
            type(event) is dict
            and type(kind) is str
            and kind in types
            and type(run_id) is str
            and run_id
            and type(agent) is str
            and agent
            and type(version) is str
            and version
            and type(step) is int
            and 0 <= step <= MAX_INT
            and (type(ts) is float or type(ts) is int)
            and type(payload) is dict
            and (parent is None or (type(parent) is str and parent))
            and (event_id is None or (type(event_id) is str and event_id))
        ):
            raise _event_error(events, event)
        checked.append((event_id, kind, agent, version, step, ts, parent, payload, run_id))
    return group(checked)


def group(events: list[tuple[Any, ...]]) -> Batch:
    """Group checked events by run, in one pass. Each event is a row (see
    ``ROW_FIELDS``) with its run id added as a ninth field.

    This loop runs for every event the collector stores: it indexes tuples
    and compares in place rather than calling functions."""
    runs: dict[str, list[Any]] = {}
    ids: list[str] = []
    terminal = TERMINAL
    for event in events:
        row = event[:8]
        ts = row[5]
        step = row[4]
        run = runs.get(event[8])
        if run is None:
            run = runs[event[8]] = [row[2], row[3], row[6], ts, ts, None, None, None, step, [row]]
        else:
            if ts < run[3]:
                run[3] = ts
            elif ts > run[4]:
                run[4] = ts
            if run[2] is None:
                run[2] = row[6]
            if step > run[8]:
                run[8] = step
            run[9].append(row)
        if row[0] is not None:
            ids.append(row[0])
        if row[1] in terminal:
            _ended(run, row[1], row[7])
    return Batch(len(events), runs, ids)


def _ended(run: list[Any], kind: str, payload: dict[str, Any]) -> None:
    """What a run's terminal event tells of it."""
    run[5] = kind
    reason = payload.get("exit_reason")
    run[6] = reason if type(reason) is str else None
    error = payload.get("error_type")
    run[7] = error if type(error) is str else None
    total = payload.get("total_steps")
    if type(total) is int and run[8] < total <= MAX_INT:
        run[8] = total


def _event_error(events: list[Any], event: Any) -> BadRequest:
    """What is wrong with an event that failed the one-condition check."""
    i = next(i for i, e in enumerate(events) if e is event)
    if type(event) is not dict:
        return BadRequest(f"events[{i}]", "must be an object")
    kind = event.get("event_type")
    if type(kind) is not str or kind not in EVENT_TYPES:
        return BadRequest(f"events[{i}].event_type", f"unknown event type {kind!r}")
    for key in _IDS:
        value = event.get(key)
        if type(value) is not str or not value:
            return BadRequest(f"events[{i}].{key}", "must be a non-empty string")
    step = event.get("step_index")
    if type(step) is not int or step < 0 or step > MAX_INT:
        return BadRequest(f"events[{i}].step_index", f"must be an integer from 0 to {MAX_INT}")
    ts = event.get("timestamp")
    if type(ts) is not float and type(ts) is not int:
        return BadRequest(f"events[{i}].timestamp", "must be a number (unix epoch seconds)")
    if type(event.get("payload")) is not dict:
        return BadRequest(f"events[{i}].payload", "must be an object")
    parent = event.get("parent_run_id")
    if parent is not None and (type(parent) is not str or not parent):
        return BadRequest(f"events[{i}].parent_run_id", "must be a non-empty string or null")
    return BadRequest(f"events[{i}].event_id", "must be a non-empty string when given")


def read_batch(data: Any) -> tuple[str, str, Batch]:
    """Check an ingest body; returns (api_key, agent_id, batch)."""
    if not isinstance(data, dict):
        raise BadRequest("body", "must be a JSON object with api_key, agent_id and events")
    api_key = _string(data.get("api_key", ""), "api_key", empty=True)
    agent_id = _string(data.get("agent_id", ""), "agent_id", empty=True)
    events = data.get("events")
    if events is None:
        raise BadRequest("events", "is required")
    if not isinstance(events, list):
        raise BadRequest("events", "must be a list of events")
    if not events:
        raise BadRequest("events", "must not be empty")
    if len(events) > MAX_EVENTS_PER_BATCH:
        raise BadRequest("events", f"{len(events)} events; at most {MAX_EVENTS_PER_BATCH} per request")
    return api_key, agent_id, read_events(events)


def validate_deploy(data: Any) -> tuple[str, str, str, dict[str, Any]]:
    """Check a deploy marker; returns (api_key, agent_id, version, meta)."""
    if not isinstance(data, dict):
        raise BadRequest("body", "must be a JSON object with api_key, agent_id, version and meta")
    api_key = _string(data.get("api_key", ""), "api_key", empty=True)
    agent_id = _string(data.get("agent_id"), "agent_id")
    version = _string(data.get("version"), "version")
    meta = data.get("meta")
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise BadRequest("meta", "must be an object")
    return api_key, agent_id, version, meta
