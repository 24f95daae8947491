"""Our own bugs never reach the agent: the guard logs once and swallows,
except in strict mode (the test suite), where it re-raises."""

from __future__ import annotations

import logging

import pytest

from dunetrace import log
from dunetrace.log import capture_internal_errors


def test_guard_swallows_and_logs_once_outside_strict_mode(caplog: pytest.LogCaptureFixture) -> None:
    log.strict = False
    with caplog.at_level(logging.ERROR, logger="dunetrace"):
        for _ in range(3):
            with capture_internal_errors("somewhere"):
                raise ZeroDivisionError("x")
    assert caplog.text.count("internal error in somewhere") == 1


def test_guard_reraises_in_strict_mode() -> None:
    with pytest.raises(ZeroDivisionError), capture_internal_errors("somewhere"):
        raise ZeroDivisionError("x")


def test_logger_has_a_null_handler() -> None:
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("dunetrace").handlers)


def test_a_passthrough_exception_reaches_the_agent_through_every_guard(dt) -> None:
    # The one exception meant for the agent (PolicyViolation is such a class):
    # raised by an on_signal listener, it leaves the run method that emitted.
    from dunetrace.live import Signal

    class Stop(Exception):
        dunetrace_passthrough = True

    class Watcher:
        def observe(self, run, event_type, step, payload):
            if event_type == "tool.called":
                run.fire(Signal("TOOL_LOOP", "high", 0.9, step, {}))

    def listener(signal):
        raise Stop("policy")

    dt.add_watcher(Watcher())
    dt.on_signal(listener)
    log.strict = False  # as in production
    with dt.run("a") as run:
        with pytest.raises(Stop):
            run.tool_called("t")
        with pytest.raises(Stop), capture_internal_errors("somewhere"):
            raise Stop("x")
