"""Batches remade from batches: merged when requests are scarce, halved or
thinned when the receiver refuses part of one.

A batch waits as its encoded body; these decode it, rebuild the event list
and encode again, which costs about what sealing it did. They run only
after a 429, a 413 or a 422, never on the way of an ordinary batch.
"""

from __future__ import annotations

from typing import Any

from .encoding import encode_body
from .export import ExportBatch

__all__ = ["halves", "rebuilt"]


def rebuilt(like: ExportBatch, events: list[dict[str, Any]], api_key: str) -> ExportBatch:
    """A batch of ``events`` for ``like``'s agent; exporters that already
    delivered ``like`` are not asked again."""
    body = encode_body({"api_key": api_key, "agent_id": like.agent_id, "events": events})
    batch = ExportBatch(like.agent_id, body, len(events))
    batch.delivered_by = set(like.delivered_by)
    return batch


def halves(batch: ExportBatch, api_key: str) -> tuple[ExportBatch, ExportBatch]:
    """The first and second half of a batch of two events or more."""
    events = batch.events
    middle = len(events) // 2
    return rebuilt(batch, events[:middle], api_key), rebuilt(batch, events[middle:], api_key)
