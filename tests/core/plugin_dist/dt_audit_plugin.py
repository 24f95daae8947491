"""A third-party plugin, shipped by test_plugin_wrappers.py as a real
distribution (``*.dist-info`` with an entry point in the ``dunetrace`` group)
and found by importlib.metadata. Every kind of pluggy implementation it may
use: new- and old-style wrappers, tryfirst / trylast, its own firstresult
hook."""

from __future__ import annotations

from typing import Any

import pluggy

from dunetrace import hookimpl

ORDER: list[str] = []
OUTCOMES: list[Any] = []
HANDLED: list[str] = []

spec = pluggy.HookspecMarker("dunetrace")


class AuditSpecs:
    @spec(firstresult=True)
    def audit_pick(self, number: int) -> Any:
        """The first non-None answer wins."""


@hookimpl
def dunetrace_configure(client: Any) -> None:
    client.plugins.add_hookspecs(AuditSpecs)
    client.plugins.register(Fallback(), name="audit.fallback")
    client.plugins.register(Picks(), name="audit.picks")
    client.plugins.register(First(), name="audit.first")
    client.plugins.register(Last(), name="audit.last")


@hookimpl(wrapper=True)
def dunetrace_event(event: dict[str, Any]) -> Any:
    # New-style wrapper: runs around every other implementation, sees their
    # changes after the yield, and may handle what they raise.
    ORDER.append("wrapper:before")
    try:
        result = yield
    except ValueError as exc:
        HANDLED.append(str(exc))
        result = []
    event["payload"]["audited"] = event["payload"].get("team", "none")
    ORDER.append("wrapper:after")
    return result


@hookimpl(hookwrapper=True)
def dunetrace_run_finished(run: Any, error: Any) -> Any:
    outcome = yield
    OUTCOMES.append((run.agent_id, outcome.get_result()))


class First:
    @hookimpl(tryfirst=True)
    def dunetrace_event(self, event: dict[str, Any]) -> None:
        ORDER.append("tryfirst")
        event["payload"]["team"] = "search"


class Last:
    @hookimpl(trylast=True)
    def dunetrace_event(self, event: dict[str, Any]) -> None:
        ORDER.append("trylast")
        if event["payload"].get("tool_name") == "wrapped-raise":
            raise ValueError("handled by the wrapper")
        if event["payload"].get("tool_name") == "unhandled-raise":
            raise KeyError("nobody handles this")


class Picks:
    @hookimpl
    def audit_pick(self, number: int) -> Any:
        if number < 0:
            raise ArithmeticError("negative")
        return None if number % 2 else f"even:{number}"


class Fallback:
    @hookimpl(trylast=True)
    def audit_pick(self, number: int) -> Any:
        return f"fallback:{number}"
