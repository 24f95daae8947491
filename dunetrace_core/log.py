"""The ``dunetrace`` logger, warn-once, and the guard that keeps our bugs out
of the agent."""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from types import TracebackType

__all__ = ["ErrorGuard", "capture_internal_errors", "internal_error", "logger", "warn_once"]

logger = logging.getLogger("dunetrace")
logger.addHandler(logging.NullHandler())

_seen: set[str] = set()
# Reentrant: a signal handler may warn on a thread that was warning.
_seen_lock = threading.RLock()

#: Set by the test suite (tests/conftest.py) so that an internal error fails
#: the test instead of being logged.
strict = False


def warn_once(cause: str, message: str, *args: object, level: int = logging.WARNING) -> bool:
    """Log ``message`` the first time ``cause`` happens in this process."""
    with _seen_lock:
        if cause in _seen:
            return False
        _seen.add(cause)
    logger.log(level, message, *args)
    return True


def reset_after_fork() -> None:
    """A forked child's lock: a thread of the parent may have held it."""
    global _seen_lock
    _seen_lock = threading.RLock()


def forget_warnings() -> None:
    """Let every cause warn again (tests, and a child after fork)."""
    with _seen_lock:
        _seen.clear()


class ErrorGuard:
    """``with ErrorGuard(where):`` runs a callback body so that nothing it
    raises reaches the agent.

    An exception is our bug: it is logged once per place with its class, and
    swallowed, unless strict mode is on (the test suite), where it is
    re-raised. One whose class sets ``dunetrace_passthrough``
    (``dunetrace.PolicyViolation``) always goes through. A guard holds no
    per-use state, so an integration builds one per callback once and reuses
    it: entering costs a method call, which matters on paths run for every
    span or callback.
    """

    __slots__ = ("where",)

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> bool:
        if exc is None or not isinstance(exc, Exception) or strict or getattr(exc, "dunetrace_passthrough", False):
            return False  # PolicyViolation (dunetrace_passthrough) is meant for the agent
        warn_once(
            f"internal:{self.where}:{type(exc).__name__}",
            "dunetrace: internal error in %s (the agent is unaffected; please report): %r",
            self.where,
            exc,
            level=logging.ERROR,
        )
        return True


def internal_error(where: str, exc: BaseException) -> None:
    """The body of a guard for ``except Exception as exc:`` blocks (free on
    the happy path, unlike entering a ``with``): logs once, or re-raises
    in strict mode. Call it only from inside the ``except`` block."""
    if strict or getattr(exc, "dunetrace_passthrough", False):
        raise
    warn_once(
        f"internal:{where}:{type(exc).__name__}",
        "dunetrace: internal error in %s (the agent is unaffected; please report): %s",
        where,
        type(exc).__name__,
        level=logging.ERROR,
    )


def capture_internal_errors(where: str) -> ErrorGuard:
    """A guard for one place; see :class:`ErrorGuard`."""
    return ErrorGuard(where)
