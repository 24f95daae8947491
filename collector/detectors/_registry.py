"""The collector's detector table: the core's table (:data:`dunetrace.detectors.DETECTORS`,
which says what each detector does and where it runs), each row with its
plain-language explanation from this package.

A new detector is a row in the core's table, its state in
:class:`dunetrace.detectors.RunJudge`, and an ``explain(evidence)`` here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dunetrace.detectors import DETECTORS as CORE_DETECTORS
from dunetrace.detectors import by_name as core_by_name

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
    run_limits,
    slow_step,
    step_count_inflation,
    tool_avoidance,
    tool_loop,
    tool_thrashing,
    tool_use,
)
from ._types import Detector

__all__ = ["DETECTORS", "by_name"]

_EXPLAIN: dict[str, Callable[[Mapping[str, Any]], dict[str, str]]] = {
    module.NAME: module.explain
    for module in (
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
}
_EXPLAIN.update(tool_use.EXPLAIN)
_EXPLAIN.update(run_limits.EXPLAIN)

#: Every detector, in the order of the core's table (the contract's fifteen first).
DETECTORS: tuple[Detector, ...] = tuple(
    Detector(
        name=info.name,
        severity=info.severity,
        defaults=dict(info.defaults),
        explain=_EXPLAIN[info.name],
        aliases=dict(info.aliases),
        ignored=info.ignored,
        where=info.where,
    )
    for info in CORE_DETECTORS
)

_BY_NAME = {d.name: d for d in DETECTORS}


def by_name(name: str) -> Detector | None:
    """The detector called ``name`` (``TOOL_LOOP`` or ``tool_loop``), or None."""
    info = core_by_name(name)
    return _BY_NAME.get(info.name) if info is not None else None
