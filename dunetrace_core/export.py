"""What an exporter receives and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ExportBatch", "ExportResult"]


@dataclass
class ExportBatch:
    """One batch of events of one agent, in the order they happened."""

    agent_id: str
    events: list[dict[str, Any]]
    #: The request body the ingest API wants, encoded once (UTF-8 JSON).
    body: bytes
    #: Names of the exporters that already delivered this batch: on a retry,
    #: an exporter finding its name here must not deliver it again.
    delivered_by: set[str] = field(default_factory=set)
    attempts: int = 0

    def __len__(self) -> int:
        return len(self.events)


@dataclass(frozen=True)
class ExportResult:
    outcome: str  # "ok" | "retry" | "drop"
    retry_after: float | None = None
    reason: str = ""

    @classmethod
    def ok(cls) -> ExportResult:
        return _OK

    @classmethod
    def retry(cls, after: float | None = None, reason: str = "") -> ExportResult:
        return cls("retry", after, reason)

    @classmethod
    def drop(cls, reason: str) -> ExportResult:
        return cls("drop", None, reason)


_OK = ExportResult("ok")
