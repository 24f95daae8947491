"""The values detectors produce: a :class:`Finding` from one detector
function, and the :class:`Signal` the collector stores and alerts on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from dunetrace.detectors import SEVERITIES, severity_rank

__all__ = ["SEVERITIES", "Detector", "Finding", "Signal", "severity_rank"]


@dataclass
class Finding:
    """What a detector function returns when it fires. ``severity`` is set
    only by detectors whose severity depends on the run (SLOW_STEP)."""

    step_index: int | None
    evidence: dict[str, Any]
    severity: str | None = None


@dataclass
class Signal:
    """One detected failure of one run."""

    detector: str
    severity: str
    run_id: str
    agent_id: str
    step_index: int | None
    #: Metadata only (counts, steps, tool names, hashes): JSON-able.
    evidence: dict[str, Any] = field(default_factory=dict)
    #: ``{"what": ..., "why": ..., "try": ...}`` in plain language.
    explanation: dict[str, str] = field(default_factory=dict)
    #: Found in the agent's process while the run was going (a live
    #: ``external.signal`` from the SDK), not by the collector's judgement.
    live: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signal:
        """The inverse of :meth:`to_dict` (for a signal read back from storage)."""
        return cls(
            detector=str(data["detector"]),
            severity=str(data["severity"]),
            run_id=str(data["run_id"]),
            agent_id=str(data["agent_id"]),
            step_index=data.get("step_index"),
            evidence=dict(data.get("evidence") or {}),
            explanation=dict(data.get("explanation") or {}),
            live=bool(data.get("live", False)),
        )


@dataclass(frozen=True)
class Detector:
    """One row of the collector's detector table: the core's row
    (:data:`dunetrace.detectors.DETECTORS`) and its explanation."""

    name: str
    severity: str
    #: Threshold keys and their defaults.
    defaults: Mapping[str, Any]
    explain: Callable[[Mapping[str, Any]], dict[str, str]]
    #: Other accepted spellings of a key (``min_repeats`` for TOOL_LOOP's
    #: ``threshold``).
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: Keys the Dunetrace backend's detectors.yml has for this detector that
    #: this collector does not use (its baseline-relative modes): accepted, so
    #: the backend's file loads, and ignored.
    ignored: frozenset[str] = frozenset()
    #: ``live``, ``collector`` or ``in-process`` (see dunetrace.detectors).
    where: str = "live"
