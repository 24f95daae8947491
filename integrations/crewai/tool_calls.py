"""CrewAI tool events as Dunetrace tool calls: the part of the
:class:`~.translator.Translator` that handles them. Imports no framework.

- ``tool_usage_started`` / ``finished`` / ``error``: one call each, its
  arguments hashed with framework objects named instead of dumped
  (:func:`~.readers.stable_args`), so identical calls hash equal.
- A tool name the model invented (CrewAI 1.15: ``tool_selection_error``,
  reported several times for one model reply, then
  ``tool_failure_detected``), arguments CrewAI rejected
  (``tool_validate_input_error``) and a tool that returned a failure
  (``tool_failure_detected``): one failed call per tool name and model reply.
- A tool error CrewAI handles (it tells the model and carries on) is a
  failed call with the exception's class as ``error_type``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .readers import elapsed_ms, reported_error, stable_args

if TYPE_CHECKING:
    from .errors import FailureLog
    from .readers import RunState

__all__ = ["ToolCalls"]


class ToolCalls:
    """Mixed into the Translator: the ends of tool calls (a call starts in
    ``Translator._tool_started``), and the calls CrewAI refused."""

    _owner: dict[str, RunState]
    failures: FailureLog

    def _state_for(self, event: Any) -> RunState | None:  # pragma: no cover - the Translator's
        raise NotImplementedError

    def _remember(self, event_id: Any, state: RunState) -> None:  # pragma: no cover
        raise NotImplementedError

    def _forget(self, event_id: Any) -> None:  # pragma: no cover
        raise NotImplementedError

    def _tool_call(self, event: Any) -> tuple[RunState, int, str, Any] | None:
        started_id = getattr(event, "started_event_id", None)
        state = self._owner.get(started_id)  # type: ignore[arg-type]
        # A tool's scope only matters while it runs (an agent it delegates to
        # hangs under it); forget it so a long crew's map stays small.
        self._forget(started_id)
        if state is None:
            state = self._state_for(event)
        if state is None or state.done:
            return None
        call = state.tools.pop(str(getattr(event, "started_event_id", None)), None)
        if call is None:
            # CrewAI 1.15 retries a failing tool and reports each failure,
            # some without a started event of their own: each one is a call.
            name = getattr(event, "tool_name", None)
            step = state.run.tool_called(name, stable_args(getattr(event, "tool_args", None)))  # type: ignore[arg-type]
            return state, step, name, getattr(event, "timestamp", None)  # type: ignore[return-value]
        return state, call[0], call[1], call[3]

    def _tool_finished(self, event: Any, source: Any) -> None:
        found = self._tool_call(event)
        if found is None:
            return
        state, step, name, started = found
        latency = elapsed_ms(getattr(event, "started_at", None), getattr(event, "finished_at", None))
        if latency is None:
            latency = elapsed_ms(started, getattr(event, "timestamp", None))
        failure = getattr(event, "failure", None)
        error = failure_error(failure) if failure is not None else None
        cut = self.failures.pop(getattr(event, "event_id", None))
        if cut is not None:  # a KeyboardInterrupt ended the tool, not the tool
            error = reported_error("the tool was interrupted", cut.error_type)
        if error is not None:
            state.failed_tools.add(name)
        state.run.tool_responded(
            name,
            error is None,
            latency_ms=latency,
            error=error,
            output=getattr(event, "output", None),
            step=step,
            from_cache=getattr(event, "from_cache", None) is True,
        )

    def _tool_error(self, event: Any, source: Any) -> None:
        found = self._tool_call(event)
        if found is None:
            return
        state, step, name, started = found
        state.failed_tools.add(name)
        state.run.tool_responded(
            name,
            False,
            latency_ms=elapsed_ms(started, getattr(event, "timestamp", None)),
            error=self._tool_exception(event),
            step=step,
        )

    def _tool_refused(self, event: Any, source: Any) -> None:
        """A call CrewAI never ran: an invented tool name, arguments it
        rejected, or a tool that reported failure. One failed call per name
        and model reply."""
        failure = getattr(event, "failure", None)
        reason = getattr(getattr(failure, "reason", None), "value", None)
        if reason == "repeated_call":
            # CrewAI stopping an agent after identical calls that all ran
            # (and were reported): not a call of its own.
            return
        state = self._state_for(event)
        if state is None:
            return
        name = getattr(event, "tool_name", None)
        if not isinstance(name, str) or not name:
            name = "unknown"
        if name in state.failed_tools:
            return
        state.failed_tools.add(name)
        run = state.run
        step = run.tool_called(name, stable_args(getattr(event, "tool_args", None)) or None)
        # CrewAI 1.15 raises a plain Exception after an unknown name or bad
        # arguments; a tool that reported failure raised nothing (its
        # ToolFailure record names it).
        fallback = "ToolFailure" if getattr(event, "type", None) == "tool_failure_detected" else "Exception"
        run.tool_responded(name, False, error=self._tool_exception(event, fallback), step=step)

    def _tool_exception(self, event: Any, fallback: str = "Exception") -> BaseException:
        error = getattr(event, "error", None)
        if isinstance(error, BaseException):
            return error
        failure = self.failures.pop(getattr(event, "event_id", None))
        if failure is not None:
            return reported_error(error, failure.error_type)
        if error is None and getattr(event, "failure", None) is not None:
            return failure_error(event.failure)
        return reported_error(error, fallback)


def failure_error(failure: Any) -> Exception:
    """A CrewAI ``ToolFailure`` (crewai 1.15) as an exception: of the class
    the tool raised when CrewAI built it from one (its ``code``), else
    ``ToolFailure`` (the tool returned it). The message is only hashed."""
    reason = getattr(getattr(failure, "reason", None), "value", getattr(failure, "reason", None))
    code = getattr(failure, "code", None)
    name = code if reason == "exception" and isinstance(code, str) else "ToolFailure"
    return reported_error(getattr(failure, "message", failure), name)
