"""Which events a 422 answer names, and which of their fields.

Two ingest services answer 422, each in its own words:

- our collector: ``{"detail": "events[3].step_index: must be ...",
  "field": "events[3].step_index"}``, one event, the first that is wrong;
- the upstream backend (FastAPI with pydantic 2): ``{"detail": [{"loc":
  ["body", "events", 3, "event_type"], "msg": "...", ...}, ...]}``, every
  error found.

An answer that names no event (the body as a whole, the batch's length,
any other service's words) yields entries with no index; the buffer then
finds the offending events by halving the batch.
"""

from __future__ import annotations

import json
import re
from typing import Any

__all__ = ["rejected_events"]

_COLLECTOR_FIELD = re.compile(r"^events\[(\d+)\](?:\.(.+))?$")

#: What one 422 entry says: (index in the batch or None, field, message).
Rejection = tuple[int | None, str, str]


def rejected_events(body: bytes) -> tuple[Rejection, ...]:
    """The events (and fields) a 422 answer names; () when it names nothing
    readable."""
    try:
        data = json.loads(body)
    except ValueError:
        return ()
    if not isinstance(data, dict):
        return ()
    detail = data.get("detail")
    if isinstance(detail, list):
        return tuple(entry for item in detail[:1000] if (entry := _pydantic_entry(item)) is not None)
    field = data.get("field")
    if isinstance(field, str):
        message = detail if isinstance(detail, str) else ""
        match = _COLLECTOR_FIELD.match(field)
        if match is None:
            return ((None, field[:100], message[:200]),)
        return ((int(match.group(1)), (match.group(2) or "event")[:100], message[:200]),)
    if isinstance(detail, str):
        return ((None, "", detail[:200]),)
    return ()


def _pydantic_entry(item: Any) -> Rejection | None:
    if not isinstance(item, dict):
        return None
    loc = item.get("loc")
    message = str(item.get("msg", ""))[:200]
    if not isinstance(loc, list):
        return (None, "", message)
    parts = loc[1:] if loc and loc[0] == "body" else loc
    if len(parts) >= 2 and parts[0] == "events" and type(parts[1]) is int and parts[1] >= 0:
        field = ".".join(str(p) for p in parts[2:]) or "event"
        return (parts[1], field[:100], message)
    return (None, (".".join(str(p) for p in parts) or "body")[:100], message)
