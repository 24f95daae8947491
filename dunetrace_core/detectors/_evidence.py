"""What a fired detector reports: its step, severity and evidence, read from
the run's state when asked (at the moment it fires, in-process; at the end
of the run, at the collector). Metadata only: counts, steps, tool and index
names, hashes, pattern names; never content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ._table import by_name

if TYPE_CHECKING:
    from ._judge import RunJudge

__all__ = ["EvidenceMixin", "Finding"]

#: A name longer than this (a pattern or field name from a sender) is cut.
_NAME_LIMIT = 64


@dataclass
class Finding:
    """One detector that fired for a run, and what it found."""

    detector: str
    severity: str
    step_index: int | None
    #: Metadata only: JSON-able.
    evidence: dict[str, Any] = field(default_factory=dict)


def _capped(values: Any, limit: int = 50) -> list[Any]:
    return list(values)[:limit]


def _nonneg_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _injection_summary(found: list[dict[str, Any]]) -> tuple[set[str], int, set[str], set[str]]:
    patterns: set[str] = set()
    matches = 0
    sources: set[str] = set()
    fields: set[str] = set()
    for payload in found:
        names = payload.get("matched_patterns", payload.get("patterns"))
        named = [n[:_NAME_LIMIT] for n in names if isinstance(n, str) and n] if isinstance(names, list) else []
        patterns.update(named)
        count = _nonneg_int(payload.get("match_count"))
        if count is None:  # another sender: each named pattern matched at least once
            count = max(_nonneg_int(payload.get("matched_pattern_count")) or 0, len(named))
        matches += count
        source = payload.get("source")
        if isinstance(source, str) and source:
            sources.add(source[:_NAME_LIMIT])
        where = payload.get("fields")
        if isinstance(where, list):
            fields.update(f[:_NAME_LIMIT] for f in where if isinstance(f, str) and f)
    return patterns, matches, sources, fields


class EvidenceMixin:
    """:meth:`finding` for :class:`RunJudge`."""

    __slots__ = ()

    def injection_matches(self: RunJudge) -> int:  # type: ignore[misc]
        return _injection_summary(self.injections)[1]

    def content_matches(self: RunJudge) -> int:  # type: ignore[misc]
        return _injection_summary([found for _, _, found in self.content_injections])[1]

    def finding(self: RunJudge, name: str) -> Finding:  # type: ignore[misc]
        """What detector ``name`` (which fired) reports about the run so far."""
        step = self.fired[name]
        severity = None
        read = _READERS[name]
        result = read(self, self.params[name])
        if isinstance(result, tuple):
            evidence, step, severity = result
        else:
            evidence = result
        info = by_name(name)
        return Finding(name, severity or (info.severity if info else "MEDIUM"), step, evidence)

    def findings(self: RunJudge) -> list[Finding]:  # type: ignore[misc]
        """Every detector that fired, in the order they fired."""
        return [self.finding(name) for name in self.fired]


def _tool_loop(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    tool = j.loop_hit or ""
    calls, first, last, steps, hashes, missing, failures, most = j.per_tool[tool]
    return {
        "tool": tool,
        "calls": calls,
        "max_in_window": most,
        "window": p["window"],
        "threshold": p["threshold"],
        "first_step": first,
        "last_step": last,
        "steps": list(steps),
        "distinct_args": len(hashes),
        "args_identical": len(hashes) == 1 and not missing,
        "failures": failures,
    }


def _thrashing(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    length, a, b, first, last = j.thrash_best or (0, "", "", 0, 0)
    return {
        "tool_a": a,
        "tool_b": b,
        "alternating_calls": length,
        "window": p["window"],
        "first_step": first,
        "last_step": last,
    }


def _retry_storm(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    tool, count, steps, args, errors = j.rs_best or ("", 0, [0], [], [])
    return {
        "tool": tool,
        "consecutive_failures": count,
        "threshold": p["threshold"],
        "first_step": steps[0],
        "last_step": steps[-1],
        "steps": list(steps),
        "args_identical": None not in args and len(set(args)) == 1,
        "same_error": None not in errors and len(set(errors)) == 1,
    }


def _cascading(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    count, tools, steps = j.cf_best or (0, set(), [0])
    return {
        "consecutive_failures": count,
        "tools": _capped(sorted(tools)),
        "distinct_tools": len(tools),
        "threshold": p["threshold"],
        "first_step": steps[0],
        "last_step": steps[-1],
        "steps": list(steps),
    }


def _truncation(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    count, steps, tokens = j.truncations
    return {
        "truncations": count,
        "llm_calls": j.llm_calls,
        "threshold": p["threshold"],
        "steps": list(steps),
        "prompt_tokens": list(tokens),
    }


def _empty(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    count, steps = j.empties
    return {"empty_responses": count, "llm_calls": j.llm_calls, "first_step": steps[0], "steps": list(steps)}


def _bloat(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    evidence = {
        "first_tokens": j.ctx_first,
        "last_tokens": j.ctx_last,
        "growth": round(j.ctx_last / j.ctx_first, 2),
        "growth_factor": p["growth_factor"],
        "llm_calls_with_tokens": j.ctx_n,
        "first_step": j.ctx_first_step,
        "last_step": j.ctx_last_step,
    }
    return evidence


def _slow(j: RunJudge, p: dict[str, Any]) -> tuple[dict[str, Any], int, str]:
    count, (ratio, duration, limit, step, kind, tool) = j.slow
    finite = ratio != float("inf")
    evidence: dict[str, Any] = {
        "kind": kind,
        "duration_ms": round(duration),
        "limit_ms": round(limit),
        "ratio": round(ratio, 1) if finite else None,
        "slow_steps": count,
    }
    if tool is not None:
        evidence["tool"] = tool
    high = not finite or ratio >= p["high_factor"]
    # The step reported is the worst one: the one to look at first.
    return evidence, step, "HIGH" if high else "MEDIUM"


def _avoidance(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    return {
        "tools_available": _capped(j.tools_available),
        "tools_available_count": len(j.tools_available),
        "tool_calls": j.tool_calls,
        "llm_calls": j.llm_calls,
    }


def _abandonment(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    if j.terminal == "errored":
        ending = "errored"
    elif j.terminal == "completed":
        ending = j.exit_reason or "completed"
    else:
        ending = "silent"
    return {
        "llm_calls_since_last_tool": j.llm_streak,
        "stall_steps": p["stall_steps"],
        "last_tool": j.last_tool,
        "last_tool_step": j.last_tool_step,
        "ending": ending,
    }


def _rag_empty(j: RunJudge, p: dict[str, Any]) -> tuple[dict[str, Any], int, None]:
    count, (_key, step, index, results, score) = j.weak_retrievals
    evidence = {
        "index_name": index,
        "result_count": results,
        "top_score": score,
        "min_score": p["min_score"],
        "min_results": p["min_results"],
        "weak_retrievals": count,
        "retrievals": j.retrievals,
    }
    return evidence, step, None


def _first_failure(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    return {**(j.first_failure or {}), "max_step": p["max_step"]}


def _stall(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    return {
        "llm_calls": j.llm_calls,
        "tool_calls": j.tool_calls,
        "ratio": round(j.llm_calls / max(j.tool_calls, 1), 2),
        "ratio_threshold": p["ratio_threshold"],
    }


def _prompt_injection(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    patterns, matches, sources, fields = _injection_summary(j.injections)
    buckets = sorted({b for f in j.injections if isinstance(b := f.get("offset_bucket"), str)})
    evidence = {
        "patterns": _capped(sorted(patterns), 20),
        "match_count": matches,
        "min_matches": p["min_matches"],
        "sources": sorted(sources),
        "fields": _capped(sorted(fields), 20),
    }
    if buckets:
        evidence["offset_buckets"] = buckets[:_NAME_LIMIT]
    return evidence


def _content_injection(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    found = [f for _, _, f in j.content_injections]
    patterns, matches, _sources, fields = _injection_summary(found)
    buckets = sorted({b for f in found if isinstance(b := f.get("offset_bucket"), str)})
    return {
        "patterns": _capped(sorted(patterns), 20),
        "match_count": matches,
        "min_matches": p["min_matches"],
        "sources": _capped(sorted({where for _, where, _ in j.content_injections}), 20),
        "fields": _capped(sorted(fields), 20),
        "offset_buckets": buckets[:10],
        "steps": [step for step, _, _ in j.content_injections],
    }


def _oversized(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    step, tool, size, limit = j.oversized
    return {"tool": tool, "step": step, "args_chars": size, "max_chars": limit}


def _scattershot(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    step, distinct, tools = j.scatter or (0, 0, [])
    return {
        "distinct_tools": distinct,
        "tools": tools,
        "window": p["window"],
        "min_distinct": p["min_distinct"],
        "step": step,
        "tool_calls": j.tool_calls,
    }


def _excessive_retrieval(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    return {"retrievals": j.retrievals, "threshold": p["threshold"], "llm_calls": j.llm_calls}


def _silent_truncation(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    return {
        "step": j.last_llm_step,
        "finish_reason": j.last_llm_finish,
        "llm_calls": j.llm_calls,
        "exit_reason": j.exit_reason or "completed",
    }


def _premature(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    return {
        "failed_tool": j.last_tool,
        "failed_step": j.last_tool_step,
        "llm_calls_after": j.llm_streak,
        "max_llm_calls_after": p["max_llm_calls_after"],
        "exit_reason": j.exit_reason or "completed",
    }


def _unread(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    failed_step, tool, next_step = j.unread or (0, "", 0)
    return {"failed_tool": tool, "failed_step": failed_step, "next_tool_step": next_step}


def _runaway(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    return {
        "steps": j.max_step,
        "max_steps": p["max_steps"],
        "total_tokens": j.total_tokens,
        "max_tokens": p["max_tokens"],
        "ended": j.terminal is not None,
    }


def _drift(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    return {
        "first_model": j.models[0] if j.models else None,
        "models": list(j.models),
        "changed_at_step": j.model_change_step,
        "llm_calls": j.llm_calls,
    }


def _delegation(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    return {
        "agent": j.agent_id,
        "times_among_parents": j.ancestors.count(j.agent_id),
        "depth": len(j.ancestors),
        "chain": [j.agent_id, *j.ancestors][:20],
        "min_cycles": p["min_cycles"],
    }


def _degraded(j: RunJudge, p: dict[str, Any]) -> dict[str, Any]:
    return {
        "dropped_events": j.dropped_events,
        "unanswered_tool_calls": max(j.pending_tool, 0),
        "unanswered_llm_calls": max(j.llm_calls - j.llm_responses, 0),
        "unanswered_retrievals": max(j.pending_retrieval, 0),
        "max_unanswered": p["max_unanswered"],
    }


_READERS: dict[str, Any] = {
    "TOOL_LOOP": _tool_loop,
    "TOOL_THRASHING": _thrashing,
    "RETRY_STORM": _retry_storm,
    "CASCADING_TOOL_FAILURE": _cascading,
    "LLM_TRUNCATION_LOOP": _truncation,
    "EMPTY_LLM_RESPONSE": _empty,
    "CONTEXT_BLOAT": _bloat,
    "SLOW_STEP": _slow,
    "TOOL_AVOIDANCE": _avoidance,
    "GOAL_ABANDONMENT": _abandonment,
    "RAG_EMPTY_RETRIEVAL": _rag_empty,
    "FIRST_STEP_FAILURE": _first_failure,
    "REASONING_STALL": _stall,
    "PROMPT_INJECTION_SIGNAL": _prompt_injection,
    "RETRIEVED_CONTENT_INJECTION": _content_injection,
    "OVERSIZED_TOOL_ARGUMENTS": _oversized,
    "SCATTERSHOT_TOOL_USE": _scattershot,
    "EXCESSIVE_RETRIEVAL": _excessive_retrieval,
    "SILENT_TRUNCATION": _silent_truncation,
    "PREMATURE_TERMINATION": _premature,
    "UNREAD_TOOL_ERROR": _unread,
    "RUNAWAY_ITERATION": _runaway,
    "MODEL_FALLBACK_DRIFT": _drift,
    "DELEGATION_LOOP": _delegation,
    "INSTRUMENTATION_DEGRADED": _degraded,
}
