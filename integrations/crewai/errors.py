"""The real exception behind a CrewAI failure event.

CrewAI 1.15 puts only ``str(error)`` in its failure events
(``AgentExecutionErrorEvent``, ``LLMCallFailedEvent``,
``CrewKickoffFailedEvent``, ...), and its handlers run later, on a thread
pool, where the exception is gone. CrewAI emits those events inside the
``except`` block that caught the exception, on the agent's own thread, so
:class:`EmitWatch` wraps ``crewai_event_bus.emit`` and, for failure events
only, notes the class name (and HTTP status) of the exception being handled
in a bounded :class:`FailureLog`, keyed by the event's id. The translator
reads it back when it translates the event. Only names and numbers are kept,
never the exception (its traceback holds the agent's frames).
"""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict
from typing import Any

from dunetrace.log import capture_internal_errors

__all__ = ["FAILURE_EVENTS", "EmitWatch", "Failure", "FailureLog", "http_status"]

#: The CrewAI event types whose exception is noted (``event.type``).
FAILURE_EVENTS = frozenset(
    {
        "agent_execution_error",
        "crew_kickoff_failed",
        "llm_call_failed",
        "task_failed",
        "tool_usage_error",
        # crewai 1.15 reports a tool as finished from a ``finally`` block,
        # also when a KeyboardInterrupt cuts it: noted only for those
        "tool_usage_finished",
    }
)


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an API error carries (``status_code`` on OpenAI,
    Anthropic and LiteLLM errors, ``response.status_code`` on httpx's),
    looking through the exceptions it was raised from."""
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 4:
        for value in (
            getattr(current, "status_code", None),
            getattr(getattr(current, "response", None), "status_code", None),
        ):
            if isinstance(value, int) and not isinstance(value, bool) and value >= 400:
                return value
        current = current.__cause__ or current.__context__
        seen += 1
    return None


class Failure:
    """What is kept of an exception: its class name and HTTP status."""

    __slots__ = ("error_type", "http_status")

    def __init__(self, error_type: str, http_status: int | None) -> None:
        self.error_type = error_type
        self.http_status = http_status


class FailureLog:
    """CrewAI event id -> :class:`Failure`, the oldest dropped past ``limit``
    (an event never translated must not hold memory for ever)."""

    def __init__(self, limit: int = 2_000) -> None:
        self._limit = limit
        self._items: OrderedDict[str, Failure] = OrderedDict()
        self._lock = threading.Lock()

    def note(self, event_id: Any, exc: BaseException) -> None:
        if not isinstance(event_id, str):
            return
        failure = Failure(type(exc).__name__, http_status(exc))
        with self._lock:
            self._items[event_id] = failure
            if len(self._items) > self._limit:
                self._items.popitem(last=False)

    def pop(self, event_id: Any) -> Failure | None:
        if not isinstance(event_id, str):
            return None
        with self._lock:
            return self._items.pop(event_id, None)

    def __len__(self) -> int:
        return len(self._items)


class EmitWatch:
    """Wraps the event bus's ``emit`` once per process; every instrumented
    client's :class:`FailureLog` hears of failures. ``remove`` restores the
    bus as it was when the last log goes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._logs: list[FailureLog] = []
        self._bus: Any = None
        self._wrapper: Any = None

    def add(self, bus: Any, log: FailureLog) -> None:
        with self._lock:
            self._logs.append(log)
            if self._bus is None:
                self._bus = bus
                original = bus.emit
                logs = self._logs

                def emit(source: Any, event: Any, *args: Any, **kwargs: Any) -> Any:
                    # The common case costs one attribute read and a set lookup.
                    with capture_internal_errors("crewai.emit_watch"):
                        kind = getattr(event, "type", None)
                        if type(kind) is str and kind in FAILURE_EVENTS:
                            exc = sys.exc_info()[1]
                            if exc is not None and (kind != "tool_usage_finished" or not isinstance(exc, Exception)):
                                for log in tuple(logs):
                                    log.note(getattr(event, "event_id", None), exc)
                    return original(source, event, *args, **kwargs)

                emit.__wrapped__ = original  # type: ignore[attr-defined]
                bus.emit = self._wrapper = emit

    def remove(self, log: FailureLog) -> None:
        with self._lock:
            if log in self._logs:
                self._logs.remove(log)
            if not self._logs and self._bus is not None:
                # The wrapper is an attribute of the instance: deleting it
                # brings back the class's own method (unless someone wrapped
                # ours since; then ours stays, listening to no log).
                if vars(self._bus).get("emit") is self._wrapper:
                    del self._bus.emit
                self._bus = self._wrapper = None


#: The one watch of this process.
emit_watch = EmitWatch()
