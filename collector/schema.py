"""The ingest contract, checked: what makes a batch or a deploy marker a 422.

Errors name the field that is wrong (``events[3].step_index``) so an SDK
author can find the bug from the answer alone. The checks are a plain loop
over the events rather than a schema library: at 500 events a batch this
loop is a measurable share of the collector's time per request.
"""

from __future__ import annotations

from typing import Any

from . import _json
from .settings import MAX_EVENTS_PER_BATCH

__all__ = [
    "EVENT_TYPES",
    "TERMINAL",
    "BadRequest",
    "Batch",
    "parse_json",
    "read_batch",
    "read_events",
    "validate_batch",
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
    end_type, exit_reason, error_type, steps, rows, events]``, where
    ``rows`` are the events in the store's row form and ``events`` the wire
    dicts. ``ids`` are the event ids given, in order.
    """

    __slots__ = ("events", "ids", "runs")

    def __init__(self, events: list[dict[str, Any]], runs: dict[str, list[Any]], ids: list[str]) -> None:
        self.events = events
        self.runs = runs
        self.ids = ids


def read_events(events: list[Any]) -> Batch:
    """Check every event and group them by run, in one pass.

    This loop is the collector's cost per event: each event is checked by
    one condition and only an event that fails it goes through the
    field-by-field check that names what is wrong.
    """
    runs: dict[str, list[Any]] = {}
    ids: list[str] = []
    types = EVENT_TYPES
    terminal = TERMINAL
    for event in events:
        # Subscripts, not .get(): CPython 3.11 specialises dict subscripts,
        # and this loop runs 500 times a request. A missing key is a 422.
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
        run = runs.get(run_id)
        if run is None:
            run = runs[run_id] = [agent, version, parent, ts, ts, None, None, None, step, [], []]
        else:
            if ts < run[3]:
                run[3] = ts
            elif ts > run[4]:
                run[4] = ts
            if run[2] is None:
                run[2] = parent
            if step > run[8]:  # noqa: PLR1730 - a call to max() per event costs more
                run[8] = step
        run[9].append([event_id, kind, agent, version, step, ts, parent, payload])
        run[10].append(event)
        if event_id is not None:
            ids.append(event_id)
        if kind in terminal:
            run[5] = kind
            reason = payload.get("exit_reason")
            run[6] = reason if type(reason) is str else None
            error = payload.get("error_type")
            run[7] = error if type(error) is str else None
            total = payload.get("total_steps")
            if type(total) is int and run[8] < total <= MAX_INT:
                run[8] = total
    return Batch(events, runs, ids)


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


def validate_batch(data: Any) -> tuple[str, str, list[dict[str, Any]]]:
    """Check an ingest body; returns (api_key, agent_id, events)."""
    api_key, agent_id, batch = read_batch(data)
    return api_key, agent_id, batch.events


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
