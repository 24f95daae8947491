"""What an exporter receives and returns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .log import warn_once

__all__ = ["ExportBatch", "ExportResult", "combined"]


class ExportBatch:
    """One batch of events of one agent, in the order they happened.

    A batch waiting for delivery is held as its encoded request body only
    (about half the memory of the dicts); ``events`` decodes it on demand.
    """

    __slots__ = ("_events", "agent_id", "attempts", "body", "delivered_by", "size")

    def __init__(self, agent_id: str, body: bytes, size: int, events: list[dict[str, Any]] | None = None) -> None:
        self.agent_id = agent_id
        #: The request body the ingest API wants, encoded once (UTF-8 JSON).
        self.body = body
        self.size = size
        #: Names of the exporters that already delivered this batch: on a
        #: retry, an exporter finding its name here must not deliver it again.
        self.delivered_by: set[str] = set()
        self.attempts = 0
        self._events = events

    @property
    def events(self) -> list[dict[str, Any]]:
        if self._events is None:
            self._events = json.loads(self.body)["events"]
        return self._events

    def __len__(self) -> int:
        return self.size


@dataclass(frozen=True)
class ExportResult:
    """What became of a batch offered to an exporter.

    ``ok``: delivered. ``retry``: keep it and offer it again later.
    ``drop``: give it up, counted under ``reason``. ``split``: the receiver
    refused some of it (413: too large, 422: invalid events): the buffer
    drops the events ``rejected`` names, or halves the batch and offers the
    halves in order, down to single events."""

    outcome: str  # "ok" | "retry" | "drop" | "split"
    retry_after: float | None = None
    reason: str = ""
    #: The receiver asked us to slow down (HTTP 429): requests are paced.
    throttled: bool = False
    #: ``split`` after a 422: (index in the batch or None, field, message)
    #: for each event the answer names.
    rejected: tuple[tuple[int | None, str, str], ...] = ()
    #: ``ok``: events the receiver's answer did not confirm.
    unconfirmed: int = 0

    @classmethod
    def ok(cls, unconfirmed: int = 0) -> ExportResult:
        return cls("ok", unconfirmed=unconfirmed) if unconfirmed else _OK

    @classmethod
    def retry(cls, after: float | None = None, reason: str = "", throttled: bool = False) -> ExportResult:
        return cls("retry", after, reason, throttled)

    @classmethod
    def drop(cls, reason: str) -> ExportResult:
        return cls("drop", None, reason)

    @classmethod
    def split(cls, reason: str, rejected: tuple[tuple[int | None, str, str], ...] = ()) -> ExportResult:
        return cls("split", None, reason, rejected=rejected)


_OK = ExportResult("ok")


def combined(results: list[ExportResult | None], batch: ExportBatch) -> ExportResult:
    """What the answers of every exporter mean for ``batch`` together: retry
    when one asks for it (after the longest wait asked), a split or a drop
    as the first exporter gave it (a drop only when none delivered the
    batch), else delivered. No exporter at all drops it as ``no_exporter``."""
    if not results:
        warn_once(
            "no-exporter",
            "dunetrace: no exporter is registered (export='none' and no plugin implements "
            "dunetrace_export); events are dropped",
        )
        return ExportResult.drop("no_exporter")
    retry = [r for r in results if r is not None and r.outcome == "retry"]
    if retry:
        waits = [r.retry_after for r in retry if r.retry_after is not None]
        throttled = any(r.throttled for r in retry)
        return ExportResult.retry(max(waits) if waits else None, retry[0].reason, throttled)
    unconfirmed = 0
    for r in results:
        if r is None:
            continue
        if r.outcome == "split":
            return r
        if r.outcome == "drop" and not batch.delivered_by:
            return r
        unconfirmed = max(unconfirmed, r.unconfirmed)
    return ExportResult.ok(unconfirmed)
