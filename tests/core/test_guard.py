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
    with pytest.raises(ZeroDivisionError):
        with capture_internal_errors("somewhere"):
            raise ZeroDivisionError("x")


def test_logger_has_a_null_handler() -> None:
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("dunetrace").handlers)
