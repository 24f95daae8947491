"""Errors seen through LangChain's callbacks: which end a run as an exit
reason of their own, and which are an API's answer worth a signal. No
framework import: classes are recognised by name along their MRO."""

from __future__ import annotations

from typing import Any

__all__ = ["api_error_signal", "is_recursion_limit"]


def _named(error: Any, name: str) -> bool:
    return any(cls.__name__ == name for cls in type(error).__mro__)


def is_recursion_limit(error: Any) -> bool:
    """LangGraph's ``GraphRecursionError``: the graph hit its
    ``recursion_limit``, an iteration limit rather than a failure of the
    agent (the run ends ``max_iterations``; the invoke still raises it)."""
    return _named(error, "GraphRecursionError")


def api_error_signal(error: BaseException) -> tuple[str, dict[str, Any]] | None:
    """``(signal_name, metadata)`` for a model call that failed with an
    HTTP error (an ``openai`` / ``anthropic`` ``APIStatusError``, an
    ``httpx.HTTPStatusError``): ``rate_limit`` for a 429, else
    ``api_error``, with the status and the exception's class. The same
    names the wrapped clients send. None for other errors."""
    status = getattr(error, "status_code", None)
    if not isinstance(status, int):
        status = getattr(getattr(error, "response", None), "status_code", None)
    if not isinstance(status, int) or isinstance(status, bool) or status < 400:
        return None
    name = "rate_limit" if status == 429 else "api_error"
    return name, {"http_status": status, "error_type": type(error).__name__}
