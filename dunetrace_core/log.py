"""The ``dunetrace`` logger, warn-once, and the guard that keeps our bugs out
of the agent."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["capture_internal_errors", "logger", "warn_once"]

logger = logging.getLogger("dunetrace")
logger.addHandler(logging.NullHandler())

_seen: set[str] = set()
_seen_lock = threading.Lock()

#: Set by the test suite (``DUNETRACE_STRICT=1``) so that an internal error
#: fails the test instead of being logged.
strict = False


def warn_once(cause: str, message: str, *args: object, level: int = logging.WARNING) -> bool:
    """Log ``message`` the first time ``cause`` happens in this process."""
    with _seen_lock:
        if cause in _seen:
            return False
        _seen.add(cause)
    logger.log(level, message, *args)
    return True


def forget_warnings() -> None:
    """Let every cause warn again (tests, and a child after fork)."""
    with _seen_lock:
        _seen.clear()


@contextmanager
def capture_internal_errors(where: str) -> Iterator[None]:
    """Run a callback body so that nothing it raises reaches the agent.

    An exception is our bug: it is logged once per place with its traceback,
    and swallowed, unless strict mode is on.
    """
    try:
        yield
    except Exception as exc:
        if strict:
            raise
        warn_once(
            f"internal:{where}:{type(exc).__name__}",
            "dunetrace: internal error in %s (the agent is unaffected; please report): %r",
            where,
            exc,
            level=logging.ERROR,
        )
