"""Live judgement inside the agent's process: the seam between runs and the
things that watch them while they run (the detector library, policies).

A *watcher* is fed every event a run emits, on the thread that emitted it,
before the event is queued: ``watcher.observe(run, event_type, step,
payload)``. It must be cheap (it is the agent's time) and must not raise;
a watcher that raises is logged once and the event still goes out.

A watcher that finds something calls :meth:`Run.fire` with a
:class:`Signal`. A run fires each signal type at most once; the signal is
added to ``run.signals``, sent as an ``external.signal`` event (``source``
``"dunetrace"``, as the wire contract says live signals travel) and handed
to every listener registered with ``Dunetrace(on_signal=...)`` /
``dt.on_signal(...)``, on the same thread.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .run import Run

__all__ = ["SOURCE", "Signal", "Watcher"]

#: ``external.signal`` ``source`` of signals found in the SDK's own process.
SOURCE = "dunetrace"


@dataclass(frozen=True)
class Signal:
    """Something found about a live run: a detector that fired, or a policy
    that triggered (``type`` ``"POLICY_TRIGGERED"``)."""

    #: The detector's name (``"TOOL_LOOP"``) or ``"POLICY_TRIGGERED"``.
    type: str
    #: ``LOW``, ``MEDIUM``, ``HIGH`` or ``CRITICAL``.
    severity: str
    #: 0.0 to 1.0.
    confidence: float
    #: The step the signal is about (the step of the event that made it fire).
    step_index: int
    #: Metadata only (counts, steps, tool names, hashes, pattern names):
    #: sent as is, so never content.
    evidence: dict[str, Any] = field(default_factory=dict)
    #: The run it is about; not part of what is sent.
    run: Run | None = field(default=None, compare=False, repr=False)

    @property
    def run_id(self) -> str | None:
        return self.run.run_id if self.run is not None else None

    @property
    def agent_id(self) -> str | None:
        return self.run.agent_id if self.run is not None else None

    def payload(self) -> dict[str, Any]:
        """The ``external.signal`` payload this signal travels as."""
        return {
            "signal_name": self.type,
            "source": SOURCE,
            "severity": self.severity,
            "confidence": self.confidence,
            "evidence": dict(self.evidence),
            "live": True,
        }


class Watcher(Protocol):
    """Fed each event of every run of a client, on the emitting thread."""

    def observe(self, run: Run, event_type: str, step: int, payload: dict[str, Any]) -> None: ...
