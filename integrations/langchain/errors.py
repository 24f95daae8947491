"""Errors seen through LangChain's callbacks: which end a run as an exit
reason of their own (an API's answer worth a signal is
``dunetrace.api_errors.api_error_signal``). No
framework import: classes are recognised by name along their MRO."""

from __future__ import annotations

from typing import Any

__all__ = ["is_recursion_limit"]


def _named(error: Any, name: str) -> bool:
    return any(cls.__name__ == name for cls in type(error).__mro__)


def is_recursion_limit(error: Any) -> bool:
    """LangGraph's ``GraphRecursionError``: the graph hit its
    ``recursion_limit``, an iteration limit rather than a failure of the
    agent (the run ends ``max_iterations``; the invoke still raises it)."""
    return _named(error, "GraphRecursionError")
