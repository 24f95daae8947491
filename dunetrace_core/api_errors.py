"""What a failed model call's HTTP answer says, as one vocabulary for every
integration: a 429 is ``rate_limit``, any other status from 400 up is
``api_error``. The integrations send it as an ``external.signal`` beside the
failed call, with the status and the exception's class name, never its
message. No framework import: the status is read by attribute."""

from __future__ import annotations

from typing import Any

__all__ = ["api_error_signal", "status_signal_name"]


def status_signal_name(status: int) -> str:
    """``rate_limit`` for HTTP 429, ``api_error`` for any other status."""
    return "rate_limit" if status == 429 else "api_error"


def _status_of(error: Any) -> int | None:
    for holder in (error, getattr(error, "response", None)):
        try:
            status = getattr(holder, "status_code", None)
        except Exception:  # a property of someone else's class that raises
            return None
        if isinstance(status, int) and not isinstance(status, bool):
            return status
    return None


def api_error_signal(error: Any) -> tuple[str, dict[str, Any]] | None:
    """``(signal_name, metadata)`` for an exception that carries an HTTP
    error status (an ``openai`` / ``anthropic`` ``APIStatusError``, an
    ``httpx.HTTPStatusError``: on itself or on its ``response``), with
    ``http_status`` and ``error_type``; None for any other error."""
    if not isinstance(error, BaseException):
        return None
    status = _status_of(error)
    if status is None or status < 400:
        return None
    return status_signal_name(status), {"http_status": status, "error_type": type(error).__name__}
