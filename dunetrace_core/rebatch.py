"""Pending batches remade: filled when requests are scarce (after a 429),
halved or thinned when the receiver refuses part of one (413, 422).

A batch waits as its encoded body; remaking one decodes it, rebuilds the
event list and encodes again, which costs about what sealing it did. This
runs only after a 429, a 413 or a 422, never on the way of an ordinary
batch. Every remade batch keeps its place among its agent's batches, so no
later event of a run overtakes an earlier one.

:class:`Reshaping` is the part of the buffer (a base of ``drain.py``'s
:class:`Draining`, under ``buffer.py``'s ``Buffer``) that does it,
on the drain thread.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from typing import TYPE_CHECKING, Any

from .encoding import encode_body
from .export import ExportBatch
from .log import warn_once

if TYPE_CHECKING:
    from .export import ExportResult
    from .options import Options

__all__ = ["NO_LIMIT", "PendingBatch", "Reshaping", "halves", "rebuilt"]

#: No 413 seen: only the event count limits a batch.
NO_LIMIT = 1 << 62


class PendingBatch:
    """Events of one agent gathered for one request, not yet offered."""

    __slots__ = ("agent_id", "batch", "events", "whole")

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        self.events: list[dict[str, Any]] = []
        self.batch: ExportBatch | None = None
        #: False for part of a batch the receiver refused (413/422): never
        #: merged back into a larger one.
        self.whole = True


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


class Reshaping:
    """The buffer's pending batches, remade (a mixin of ``Buffer``, whose
    state it uses: these attributes are set there)."""

    _pending: deque[PendingBatch]
    _open: dict[str, PendingBatch]
    _ceiling: int
    _options: Options
    _lock: threading.Lock
    _pending_events: int
    dropped: Counter[str]
    # After a 413: the smallest body refused, and the largest accepted
    # below it, in bytes. Batches are cut to the latter before they go.
    _body_limit: int
    _body_ok: int

    def refresh_room(self) -> None:
        raise NotImplementedError

    def _fill(self, group: PendingBatch) -> bool:
        """Paced: fill ``group``'s batch up to ``max_batch_size`` from the
        batches of its agent that follow it (sealed small before the 429, or
        cut at a smaller size, or still open): whole ones merged in, the
        last one giving the events that fit and keeping the rest, so each
        request carries a full batch. Whether it is full now."""
        batch = group.batch
        ceiling = self._ceiling
        if batch is None:
            return len(group.events) >= ceiling
        if batch.size >= ceiling or not group.whole or batch.delivered_by:
            return batch.size >= ceiling
        key = self._options.api_key
        events: list[dict[str, Any]] | None = None
        merged: list[PendingBatch] = []
        total, size = batch.size, len(batch.body)
        seen = False
        for other in self._pending:
            if other is group:
                seen = True
                continue
            if not seen or other.agent_id != group.agent_id:
                continue
            more = other.batch
            if total >= ceiling or not other.whole or (more is not None and more.delivered_by):
                break
            if events is None:
                events = list(batch.events)
            room = ceiling - total
            if more is None:
                # Still open (its agent's last batch): the events that fit.
                if self._body_limit == NO_LIMIT:
                    taken = other.events[:room]
                    del other.events[:room]
                    events.extend(taken)
                    total += len(taken)
                    if not other.events:
                        merged.append(other)
                        if self._open.get(other.agent_id) is other:
                            del self._open[other.agent_id]
                break
            if more.size <= room and size + len(more.body) <= self._fit_size():
                events.extend(more.events)
                merged.append(other)
                total += more.size
                size += len(more.body)
                continue
            if self._body_limit == NO_LIMIT:
                rest = more.events
                events.extend(rest[:room])
                other.batch = rebuilt(more, rest[room:], key)
                total = ceiling
            break
        if events is not None and total > batch.size:
            group.batch = rebuilt(batch, events, key)
            for other in merged:
                self._pending.remove(other)
        return total >= ceiling

    def _refused(self, group: PendingBatch, result: ExportResult) -> None:
        """The receiver refused part of a batch (413 or 422): drop the
        events its answer names, or a batch of one; else halve it, the
        halves in its place and in order."""
        batch: ExportBatch = group.batch  # type: ignore[assignment]
        reason = result.reason or "rejected"
        if reason == "payload_too_large":
            self._body_limit = min(self._body_limit, len(batch.body))
            if self._body_ok >= self._body_limit:
                self._body_ok = 0  # the receiver's limit went down
        events = batch.events
        named = {i for i, _, _ in result.rejected if i is not None and 0 <= i < len(events)}
        if not named and len(events) > 1:
            first, second = halves(batch, self._options.api_key)
            group.batch, group.whole = first, False
            part = PendingBatch(group.agent_id)
            part.batch, part.whole = second, False
            self._pending.insert(self._pending.index(group) + 1, part)
            return
        bad = named or {0}
        said = {i: (field, message) for i, field, message in result.rejected if i is not None}
        unplaced = next(((f, m) for i, f, m in result.rejected if i is None), ("unknown", ""))
        for i in sorted(bad):
            self._warn_refused(events[i], reason, len(batch.body), *said.get(i, unplaced))
        rest = [event for i, event in enumerate(events) if i not in bad]
        with self._lock:
            self._pending_events -= len(bad)
            self.dropped[reason] += len(bad)
            self.refresh_room()
        if rest:
            group.batch, group.whole = rebuilt(batch, rest, self._options.api_key), False
        else:
            self._pending.remove(group)

    def _warn_refused(self, event: dict[str, Any], reason: str, size: int, field: str, message: str) -> None:
        kind = str(event.get("event_type"))
        if reason == "payload_too_large":
            warn_once(
                f"too-large:{kind}",
                "dunetrace: the ingest API refused a single %s event as too large (HTTP 413, %d bytes); "
                "it is dropped and counted in stats()['dropped']['payload_too_large']",
                kind,
                size,
            )
            return
        warn_once(
            f"rejected:{kind}:{field}",
            "dunetrace: the ingest API refused a %s event as invalid (HTTP 422, field %r: %s); it is "
            "dropped and counted in stats()['dropped']['rejected'], the rest of its batch is delivered. "
            "This is a bug in dunetrace or in a plugin that changes events: please report it",
            kind,
            field or "unknown",
            message or "no reason given",
        )

    def _fit_size(self) -> int:
        """The largest body to send: one the receiver accepted below the
        smallest it refused (413), else just under that."""
        return self._body_ok or self._body_limit - 1

    def _fit(self, group: PendingBatch) -> None:
        """The receiver refused bodies this large (413): halve the batch
        until each part fits or is one event, the parts in its place and in
        order, instead of having each refused once."""
        api_key = self._options.api_key
        fit = self._fit_size()
        todo = [group.batch]
        parts: list[ExportBatch] = []
        while todo:
            batch = todo.pop(0)
            if len(batch.body) <= fit or batch.size == 1:  # type: ignore[union-attr]
                parts.append(batch)  # type: ignore[arg-type]
            else:
                todo[0:0] = halves(batch, api_key)  # type: ignore[arg-type]
        group.batch, group.whole = parts[0], False
        at = self._pending.index(group)
        for n, batch in enumerate(parts[1:], 1):
            part = PendingBatch(group.agent_id)
            part.batch, part.whole = batch, False
            self._pending.insert(at + n, part)
