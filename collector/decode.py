"""An ingest body decoded and checked in one pass in C (msgspec), for the
bodies that are valid: the common case, where checking each event in Python
would be most of the collector's cost per event.

The types below say what the contract says, no more: a test holds them to
``schema.read_batch`` on valid and invalid bodies alike. A body they refuse
is not answered from here: it goes through ``schema.read_batch``, which
decides whether it is valid and names the field at fault when it is not.
So every 422 and its message come from one place.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from .schema import EVENT_TYPES, MAX_INT, Batch, group
from .settings import MAX_EVENTS_PER_BATCH

__all__ = ["AVAILABLE", "decode_batch"]

try:
    import msgspec
    from msgspec.structs import astuple
except ImportError:  # pragma: no cover - the collector extra installs it
    msgspec = None

AVAILABLE = msgspec is not None

if msgspec is not None:
    _NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]

    class _Event(msgspec.Struct, kw_only=True):
        # In the order of the store's row (schema.ROW_FIELDS), run_id last:
        # astuple() gives what schema.group() takes.
        event_id: Optional[_NonEmpty] = None  # noqa: UP045 - msgspec reads these at runtime
        event_type: Literal[tuple(sorted(EVENT_TYPES))]  # type: ignore[valid-type]
        agent_id: _NonEmpty
        agent_version: _NonEmpty
        step_index: Annotated[int, msgspec.Meta(ge=0, le=MAX_INT)]
        timestamp: float  # a JSON integer is accepted and read as a float
        parent_run_id: Optional[_NonEmpty] = None  # noqa: UP045
        payload: dict[str, Any]
        run_id: _NonEmpty

    class _Body(msgspec.Struct):
        events: Annotated[list[_Event], msgspec.Meta(min_length=1, max_length=MAX_EVENTS_PER_BATCH)]
        api_key: str = ""
        agent_id: str = ""

    _decode = msgspec.json.Decoder(_Body).decode
    _refused: tuple[type[BaseException], ...] = (msgspec.DecodeError, ValueError, RecursionError)


def decode_batch(body: bytes) -> tuple[str, Batch] | None:
    """``(api_key, batch)`` for a valid ingest body, grouped by run as
    ``schema.read_events`` groups it; None when msgspec is missing or the
    body is not plainly valid (the caller then takes ``schema.read_batch``)."""
    if msgspec is None:
        return None
    try:
        data = _decode(body)
    except _refused:  # ValidationError is a DecodeError; UnicodeDecodeError a ValueError
        return None
    return data.api_key, group([astuple(event) for event in data.events])
