"""Explanations of the run-level detectors added with the core library:
EXCESSIVE_RETRIEVAL, SILENT_TRUNCATION, RUNAWAY_ITERATION,
MODEL_FALLBACK_DRIFT, DELEGATION_LOOP, INSTRUMENTATION_DEGRADED and
RETRIEVED_CONTENT_INJECTION (their conditions are in :mod:`dunetrace.detectors`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import plural

__all__ = ["EXPLAIN"]


def excessive_retrieval(e: Mapping[str, Any]) -> dict[str, str]:
    return {
        "what": f"The run made {plural(e['retrievals'], 'retrieval')}, at or over the limit of {e['threshold']}.",
        "why": (
            "Retrieving again and again usually means the queries do not find what the agent needs, so it "
            "keeps rephrasing; every retrieval adds latency and documents to the context."
        ),
        "try": (
            "Check the queries and what the index returns for them; give the agent a rule to stop after a few "
            "empty searches. If many retrievals are normal here, raise EXCESSIVE_RETRIEVAL's threshold."
        ),
    }


def silent_truncation(e: Mapping[str, Any]) -> dict[str, str]:
    return {
        "what": (
            f"The run ended with an answer, but its last model response (step {e['step']}) was cut off at the "
            f"output limit (finish reason '{e['finish_reason']}')."
        ),
        "why": "The user got an unfinished answer that looks finished: nothing in the run reported the cut.",
        "try": (
            "Raise the model's max output tokens or ask for a shorter answer, and treat a 'length' finish "
            "reason as an error to handle before returning the answer."
        ),
    }


def runaway(e: Mapping[str, Any]) -> dict[str, str]:
    return {
        "what": (
            f"The run passed its ceiling before ending: {plural(e['steps'], 'step')} (limit {e['max_steps']}) "
            f"and {e['total_tokens']} tokens (limit {e['max_tokens']})."
        ),
        "why": (
            "A run this long is rarely making progress: it is looping or stuck, and every further step costs "
            "tokens and time."
        ),
        "try": (
            "Put a step limit on the agent with a graceful final answer, or a stop policy on steps or tokens. "
            "If long runs are normal here, raise RUNAWAY_ITERATION's max_steps or max_tokens."
        ),
    }


def model_drift(e: Mapping[str, Any]) -> dict[str, str]:
    models = ", ".join(f"'{m}'" for m in e["models"][:10])
    return {
        "what": (
            f"The model changed during the run at step {e['changed_at_step']}: it started with "
            f"'{e['first_model']}' and used {models}."
        ),
        "why": (
            "A model that changes mid-run is usually a fallback after errors or rate limits: answers, cost "
            "and tool use then follow another model's behaviour, often without anyone noticing."
        ),
        "try": (
            "Look for errors or 429s on the first model around that step. If this agent routes between models "
            "by design, turn MODEL_FALLBACK_DRIFT off for it."
        ),
    }


def delegation_loop(e: Mapping[str, Any]) -> dict[str, str]:
    chain = " <- ".join(e["chain"][:10])
    return {
        "what": (
            f"The agent '{e['agent']}' was started again by a chain of runs that already includes it "
            f"{plural(e['times_among_parents'], 'time')} ({chain}), {e['depth']} levels deep."
        ),
        "why": "Agents handing the task back and forth never finish it, and each hand-off is another run to pay for.",
        "try": (
            "Give each agent a clear rule for when to answer instead of delegating, and cap the delegation "
            "depth. If recursion is by design, raise DELEGATION_LOOP's min_cycles."
        ),
    }


def degraded(e: Mapping[str, Any]) -> dict[str, str]:
    unanswered = e["unanswered_tool_calls"] + e["unanswered_llm_calls"] + e["unanswered_retrievals"]
    return {
        "what": (
            f"This run's record is incomplete: {plural(e['dropped_events'], 'event')} dropped by the SDK and "
            f"{plural(unanswered, 'call')} with no response reported."
        ),
        "why": (
            "Signals about this run may be missing or wrong: the detectors only see what was reported. Dropped "
            "events mean the SDK's queue was full; unanswered calls mean a call raised or the integration "
            "missed its end."
        ),
        "try": (
            "Check the SDK's warnings in your logs, raise max_queue_size if events are dropped, and report the "
            "end of every call (or let the integration do it) even when it raises."
        ),
    }


def content_injection(e: Mapping[str, Any]) -> dict[str, str]:
    names = ", ".join(e["patterns"]) or "unnamed patterns"
    where = ", ".join(e["sources"][:5])
    return {
        "what": (
            f"Content the agent read ({where}) matched known prompt-injection phrasing "
            f"{plural(e['match_count'], 'time')} ({names}). The check ran on your side before hashing; the "
            "content itself was not sent."
        ),
        "why": (
            "Instructions hidden in a document or a tool result can take over the agent: make it ignore its "
            "rules, leak data, or misuse its tools. The agent reads them with the same trust as your prompt."
        ),
        "try": (
            "Find that document or tool result in your own data. Mark retrieved text as data, not instructions, "
            "limit what the agent's tools can do, and require confirmation for actions with side effects."
        ),
    }


EXPLAIN = {
    "EXCESSIVE_RETRIEVAL": excessive_retrieval,
    "SILENT_TRUNCATION": silent_truncation,
    "RUNAWAY_ITERATION": runaway,
    "MODEL_FALLBACK_DRIFT": model_drift,
    "DELEGATION_LOOP": delegation_loop,
    "INSTRUMENTATION_DEGRADED": degraded,
    "RETRIEVED_CONTENT_INJECTION": content_injection,
}
