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

__all__ = ["EVENT_TYPES", "TERMINAL", "BadRequest", "parse_json", "validate_batch", "validate_deploy"]

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


def validate_batch(data: Any) -> tuple[str, str, list[dict[str, Any]]]:
    """Check an ingest body; returns (api_key, agent_id, events)."""
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
    for i, event in enumerate(events):
        if type(event) is not dict:
            raise BadRequest(f"events[{i}]", "must be an object")
        kind = event.get("event_type")
        if type(kind) is not str or kind not in EVENT_TYPES:
            raise BadRequest(f"events[{i}].event_type", f"unknown event type {kind!r}")
        for key in _IDS:
            value = event.get(key)
            if type(value) is not str or not value:
                raise BadRequest(f"events[{i}].{key}", "must be a non-empty string")
        step = event.get("step_index")
        if type(step) is not int or step < 0 or step > MAX_INT:
            raise BadRequest(f"events[{i}].step_index", f"must be an integer from 0 to {MAX_INT}")
        ts = event.get("timestamp")
        if type(ts) is not float and type(ts) is not int:
            raise BadRequest(f"events[{i}].timestamp", "must be a number (unix epoch seconds)")
        payload = event.get("payload")
        if type(payload) is not dict:
            raise BadRequest(f"events[{i}].payload", "must be an object")
        parent = event.get("parent_run_id")
        if parent is not None and (type(parent) is not str or not parent):
            raise BadRequest(f"events[{i}].parent_run_id", "must be a non-empty string or null")
        event_id = event.get("event_id")
        if event_id is not None and (type(event_id) is not str or not event_id):
            raise BadRequest(f"events[{i}].event_id", "must be a non-empty string when given")
    return api_key, agent_id, events


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
