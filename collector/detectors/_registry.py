"""The detector table: every detector module, in the contract's order.

A new detector is a module with ``NAME``, ``SEVERITY``, ``DEFAULTS``,
``detect(run, params)`` and ``explain(evidence)`` (optionally ``ALIASES`` and
``IGNORED``), added to ``_MODULES``.
"""

from __future__ import annotations

from types import ModuleType

from . import (
    cascading_tool_failure,
    context_bloat,
    empty_llm_response,
    first_step_failure,
    goal_abandonment,
    llm_truncation_loop,
    prompt_injection,
    rag_empty_retrieval,
    reasoning_stall,
    retry_storm,
    slow_step,
    step_count_inflation,
    tool_avoidance,
    tool_loop,
    tool_thrashing,
)
from ._types import Detector

__all__ = ["DETECTORS", "by_name"]

_MODULES: tuple[ModuleType, ...] = (
    tool_loop,
    tool_thrashing,
    retry_storm,
    cascading_tool_failure,
    llm_truncation_loop,
    empty_llm_response,
    context_bloat,
    slow_step,
    tool_avoidance,
    goal_abandonment,
    rag_empty_retrieval,
    step_count_inflation,
    first_step_failure,
    reasoning_stall,
    prompt_injection,
)


def _row(module: ModuleType) -> Detector:
    return Detector(
        name=module.NAME,
        severity=module.SEVERITY,
        defaults=dict(module.DEFAULTS),
        detect=module.detect,
        explain=module.explain,
        aliases=dict(getattr(module, "ALIASES", {})),
        ignored=frozenset(getattr(module, "IGNORED", frozenset())),
    )


#: Every detector, in the order of the contract's table.
DETECTORS: tuple[Detector, ...] = tuple(_row(m) for m in _MODULES)

_BY_NAME = {d.name: d for d in DETECTORS}


def by_name(name: str) -> Detector | None:
    """The detector called ``name`` (``TOOL_LOOP`` or ``tool_loop``), or None."""
    return _BY_NAME.get(name.upper())
