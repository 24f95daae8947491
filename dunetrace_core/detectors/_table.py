"""The detector table: each detector's name, severity, threshold keys with
their defaults, and where it runs.

``live`` detectors run in the agent's process on each event and at the
collector over the stored run, with the same code (:class:`RunJudge`).
``collector`` detectors need other runs (a baseline of the agent's earlier
runs) and run only there. DELEGATION_LOOP needs the runs that started this
one: the client knows them while they are open, so it runs in-process, and
the collector shows what the SDK sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DETECTORS", "SEVERITIES", "DetectorInfo", "by_name", "severity_rank"]

#: Lowest to highest.
SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")


def severity_rank(severity: str) -> int:
    """0 for LOW up to 3 for CRITICAL; ValueError for anything else."""
    try:
        return SEVERITIES.index(severity.upper())
    except (ValueError, AttributeError):
        raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}; got {severity!r}") from None


@dataclass(frozen=True)
class DetectorInfo:
    """One row of the table."""

    name: str
    severity: str
    #: Threshold keys and their defaults.
    defaults: Mapping[str, Any]
    #: When it fires, in plain words (the README's table says the same).
    condition: str
    #: ``"live"``: in-process and at the collector; ``"collector"``: only
    #: there; ``"in-process"``: only in the agent's process.
    where: str = "live"
    #: Other accepted spellings of a key (``min_repeats`` for ``threshold``).
    aliases: Mapping[str, str] = field(default_factory=dict)
    #: Keys the Dunetrace backend's detectors.yml has that are not used here
    #: (its baseline-relative modes): accepted and ignored.
    ignored: frozenset[str] = frozenset()
    #: Other names the detector answers to in settings.
    other_names: tuple[str, ...] = ()
    #: How sure a firing is that something is wrong (0 to 1): lower for the
    #: detectors where a healthy agent can look the same by design.
    confidence: float = 0.9


_I = DetectorInfo
_BASELINE = frozenset({"inflation_factor"})

#: Every detector: the contract's fifteen first, in its order, then the rest.
DETECTORS: tuple[DetectorInfo, ...] = (
    _I(
        "TOOL_LOOP",
        "HIGH",
        {"threshold": 3, "window": 5},
        "one tool makes up `threshold` or more of any `window` consecutive tool calls",
        aliases={"min_repeats": "threshold"},
    ),
    _I(
        "TOOL_THRASHING",
        "HIGH",
        {"window": 6},
        "`window` consecutive tool calls alternate between exactly two tools (A, B, A, B, ...)",
    ),
    _I(
        "RETRY_STORM",
        "HIGH",
        {"threshold": 3},
        "the same tool fails `threshold` times in a row (LLM calls between do not break the streak)",
    ),
    _I(
        "CASCADING_TOOL_FAILURE",
        "HIGH",
        {"threshold": 3},
        "`threshold` consecutive tool calls fail, across two or more tools",
    ),
    _I(
        "LLM_TRUNCATION_LOOP",
        "HIGH",
        {"threshold": 2},
        "`threshold` LLM responses end with finish_reason `length` / `max_tokens`",
    ),
    _I("EMPTY_LLM_RESPONSE", "HIGH", {}, "an LLM response has output_length 0 and finish_reason `stop` / `end_turn`"),
    _I(
        "CONTEXT_BLOAT",
        "MEDIUM",
        {"min_calls": 3, "growth_factor": 3.0, "min_last_tokens": 2000},
        "`min_calls` LLM calls report prompt tokens, the latest is `growth_factor` times the first "
        "and at least `min_last_tokens`",
        ignored=_BASELINE,
    ),
    _I(
        "SLOW_STEP",
        "MEDIUM",
        {"tool_seconds": 15.0, "llm_seconds": 30.0, "high_factor": 5.0},
        "a tool call over `tool_seconds` or an LLM call over `llm_seconds`; HIGH at `high_factor` times the limit",
        ignored=_BASELINE,
        confidence=1.0,
    ),
    _I(
        "TOOL_AVOIDANCE",
        "MEDIUM",
        {"min_llm_calls": 2},
        "the run answers after `min_llm_calls` or more LLM calls without calling any of its listed tools",
        confidence=0.6,
    ),
    _I(
        "GOAL_ABANDONMENT",
        "MEDIUM",
        {"stall_steps": 4},
        "after using tools the run makes `stall_steps` LLM calls in a row and ends without an answer",
    ),
    _I(
        "RAG_EMPTY_RETRIEVAL",
        "MEDIUM",
        {"min_score": 0.3, "min_results": 1},
        "the run answers although a retrieval returned fewer than `min_results` or scored below `min_score`",
    ),
    _I(
        "STEP_COUNT_INFLATION",
        "MEDIUM",
        {"inflation_factor": 2.0, "min_runs": 10},
        "the run's steps exceed `inflation_factor` times the 75th percentile of the agent's last runs "
        "(once there are `min_runs`)",
        where="collector",
    ),
    _I(
        "FIRST_STEP_FAILURE",
        "MEDIUM",
        {"max_step": 2},
        "at step `max_step` or earlier a tool fails, an LLM call errors or returns nothing, or the run errors",
    ),
    _I(
        "REASONING_STALL",
        "MEDIUM",
        {"min_llm_calls": 5, "ratio_threshold": 4.0},
        "`min_llm_calls` or more LLM calls and `ratio_threshold` or more LLM calls per tool call",
        ignored=_BASELINE,
        confidence=0.7,
    ),
    _I(
        "PROMPT_INJECTION_SIGNAL",
        "CRITICAL",
        {"min_matches": 1},
        "the user input or system prompt matches injection patterns `min_matches` times (scanned "
        "in-process before hashing; only the evidence is sent)",
        other_names=("PROMPT_INJECTION",),
        confidence=0.8,
    ),
    _I(
        "RETRIEVED_CONTENT_INJECTION",
        "HIGH",
        {"min_matches": 1},
        "a retrieved document or a tool output matches injection patterns `min_matches` times (scanned "
        "in-process before hashing; only the evidence is sent)",
        confidence=0.8,
    ),
    _I(
        "OVERSIZED_TOOL_ARGUMENTS",
        "MEDIUM",
        {"max_chars": 20_000},
        "a tool call's arguments are over `max_chars` characters (as canonical JSON)",
    ),
    _I(
        "SCATTERSHOT_TOOL_USE",
        "LOW",
        {"min_distinct": 6, "window": 8},
        "`min_distinct` different tools within `window` consecutive tool calls",
        confidence=0.5,
    ),
    _I("EXCESSIVE_RETRIEVAL", "MEDIUM", {"threshold": 10}, "`threshold` retrievals in one run"),
    _I("SILENT_TRUNCATION", "MEDIUM", {}, "the run answers and its last LLM response was cut off at the output limit"),
    _I(
        "PREMATURE_TERMINATION",
        "MEDIUM",
        {"max_llm_calls_after": 1},
        "the run answers right after a tool call that failed (at most `max_llm_calls_after` LLM calls after it)",
    ),
    _I(
        "UNREAD_TOOL_ERROR",
        "MEDIUM",
        {},
        "a tool call fails and a call of another tool starts with no LLM call between (the model never saw the error)",
    ),
    _I(
        "RUNAWAY_ITERATION",
        "HIGH",
        {"max_steps": 50, "max_tokens": 300_000},
        "the run passes `max_steps` steps or `max_tokens` tokens (prompt + completion, summed) before it ends",
        confidence=1.0,
    ),
    _I(
        "MODEL_FALLBACK_DRIFT",
        "MEDIUM",
        {},
        "an LLM call uses another model than the run's first LLM call",
        confidence=0.7,
    ),
    _I(
        "DELEGATION_LOOP",
        "HIGH",
        {"min_cycles": 2},
        "a run is started for an agent that already appears `min_cycles` times among the runs that "
        "started it (A -> B -> A -> B -> A)",
        where="in-process",
    ),
    _I(
        "INSTRUMENTATION_DEGRADED",
        "LOW",
        {"max_unanswered": 0},
        "the run ends with events dropped, or more than `max_unanswered` calls that never got their response",
        confidence=1.0,
    ),
)

_BY_NAME: dict[str, DetectorInfo] = {}
for _info in DETECTORS:
    _BY_NAME[_info.name] = _info
    for _other in _info.other_names:
        _BY_NAME[_other] = _info


def by_name(name: str) -> DetectorInfo | None:
    """The detector called ``name`` (``TOOL_LOOP`` or ``tool_loop``), or None."""
    return _BY_NAME.get(name.upper()) if isinstance(name, str) else None
