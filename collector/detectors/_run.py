"""One run's events, read once into the shape the detectors ask about.

The collector hands :func:`judge_run` the wire dicts of one run in arrival
order. Every detector wants the same few things (the tool calls in order with
their outcomes, the LLM calls with their token counts, how the run ended), so
they are extracted here once, in step order, and each detector stays a few
lines over plain lists.

Payload keys are optional in the contract and a payload may carry a wrong
type; a value of the wrong type is read as missing, never guessed.
"""

from __future__ import annotations

import math
from operator import itemgetter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LlmCall", "Retrieval", "RunView", "ToolCall", "capped", "plural", "read_run"]

#: ``run.completed`` exit reasons that mean the agent gave its answer.
#: ``completed`` is what the SDK sends when a run ends normally without
#: ``run.final_answer()``, so it counts: the agent returned its result.
ANSWERED_EXIT_REASONS = frozenset({"final_answer", "completed"})

#: Finish reasons that mean the model was cut off by its output limit
#: (OpenAI-style ``length``, Anthropic's ``max_tokens``).
TRUNCATED_FINISH_REASONS = frozenset({"length", "max_tokens"})

#: Finish reasons that mean the model stopped by itself (OpenAI ``stop``,
#: Anthropic ``end_turn``).
STOPPED_FINISH_REASONS = frozenset({"stop", "end_turn"})

#: Finish reasons after which empty text is normal: the model asked for tools.
TOOL_FINISH_REASONS = frozenset({"tool_calls", "function_call", "tool_use"})


def _int(value: Any) -> int | None:
    kind = type(value)  # exact types: bool is not a count; fast on the common path
    if kind is int:
        return value if value >= 0 else None
    if kind is float and math.isfinite(value) and value >= 0:
        return int(value)
    return None


def _float(value: Any) -> float | None:
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else None
    if kind is int:
        return float(value)
    return None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(slots=True)
class ToolCall:
    step: int
    name: str
    args_hash: str | None = None
    success: bool | None = None  # None: no tool.responded (yet)
    error_hash: str | None = None
    latency_ms: float | None = None
    started: float | None = None
    ended: float | None = None


@dataclass(slots=True)
class LlmCall:
    step: int
    prompt_tokens: int | None = None
    finish_reason: str | None = None
    output_length: int | None = None
    latency_ms: float | None = None
    started: float | None = None
    ended: float | None = None
    responded: bool = False


@dataclass(slots=True)
class Retrieval:
    step: int
    index_name: str | None
    result_count: int | None
    top_score: float | None


@dataclass
class RunView:
    """What the detectors read. Lists are in step order."""

    run_id: str
    agent_id: str
    tools_available: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    llm_calls: list[LlmCall] = field(default_factory=list)
    retrievals: list[Retrieval] = field(default_factory=list)
    #: ``external.signal`` payloads with ``signal_name == "prompt_injection"``.
    injections: list[dict[str, Any]] = field(default_factory=list)
    #: "completed", "errored", or None when the run went silent.
    terminal: str | None = None
    exit_reason: str | None = None
    error_type: str | None = None
    terminal_step: int | None = None
    total_steps: int = 0
    #: Action steps (llm/tool/retrieval calls) in step order, as kinds:
    #: "llm", "tool", "retrieval".
    sequence: list[tuple[int, str]] = field(default_factory=list)
    prior_step_counts: Sequence[int] = ()

    @property
    def answered(self) -> bool:
        return self.terminal == "completed" and (self.exit_reason or "completed") in ANSWERED_EXIT_REASONS


_CALLS = frozenset({"tool.called", "llm.called", "retrieval.called"})

#: Sort key: step, then time, then arrival.
_ORDER = itemgetter(0, 1, 2)


def read_run(events: Iterable[dict[str, Any]], prior_step_counts: Sequence[int] = ()) -> RunView:
    """Read one run's wire events (any order) into a :class:`RunView`."""
    items: list[tuple[int, float, int, float | None, dict[str, Any]]] = []
    for position, event in enumerate(events):
        if isinstance(event, dict):
            step, ts = _int(event.get("step_index")), _float(event.get("timestamp"))
            items.append((step or 0, ts or 0.0, position, ts, event))
    # By step, then time; events of one step and time keep their arrival
    # order, which the SDK makes called-before-responded.
    items.sort(key=_ORDER)
    first = items[0][4] if items else {}
    view = RunView(
        run_id=str(first.get("run_id") or ""),
        agent_id=str(first.get("agent_id") or ""),
        prior_step_counts=tuple(prior_step_counts),
    )
    tools: dict[int, ToolCall] = {}
    llms: dict[int, LlmCall] = {}
    pending_retrievals: dict[int, str | None] = {}
    seen_calls: set[int] = set()
    seen_retrievals: set[int] = set()
    max_step = 0
    for step, _key, _position, ts, event in items:
        kind = event.get("event_type")
        payload = event.get("payload")
        if not isinstance(payload, dict):
            payload = {}
        max_step = max(max_step, step)
        if kind == "run.started":
            names = payload.get("tools")
            if isinstance(names, list):
                view.tools_available = [n for n in names if isinstance(n, str) and n]
        elif kind in _CALLS and step in seen_calls:
            # Each call has its own step, so a second *.called at a step is a
            # resent copy (delivery is at least once): counting it would
            # invent a repeat.
            continue
        elif kind == "tool.called":
            seen_calls.add(step)
            name = _str(payload.get("tool_name")) or "unknown"
            call = ToolCall(step, name, _str(payload.get("args_hash")), started=ts)
            tools[step] = call
            view.tool_calls.append(call)
            view.sequence.append((step, "tool"))
        elif kind == "tool.responded":
            call = tools.get(step)
            if call is None:  # a response without its call: still an outcome
                call = tools[step] = ToolCall(step, _str(payload.get("tool_name")) or "unknown")
                view.tool_calls.append(call)
                view.sequence.append((step, "tool"))
            success = payload.get("success")
            call.success = success if isinstance(success, bool) else None
            call.latency_ms = _float(payload.get("latency_ms"))
            call.error_hash = _str(payload.get("error_hash"))
            call.ended = ts
        elif kind == "llm.called":
            seen_calls.add(step)
            llm = LlmCall(step, _int(payload.get("prompt_tokens")), started=ts)
            llms[step] = llm
            view.llm_calls.append(llm)
            view.sequence.append((step, "llm"))
        elif kind == "llm.responded":
            llm = llms.get(step)
            if llm is None:
                llm = llms[step] = LlmCall(step)
                view.llm_calls.append(llm)
                view.sequence.append((step, "llm"))
            llm.responded = True
            # The provider's own count, when the response carries one, is the
            # exact figure; the count at call time may be an estimate.
            tokens = _int(payload.get("prompt_tokens"))
            if tokens is not None:
                llm.prompt_tokens = tokens
            llm.finish_reason = _str(payload.get("finish_reason"))
            llm.output_length = _int(payload.get("output_length"))
            llm.latency_ms = _float(payload.get("latency_ms"))
            llm.ended = ts
        elif kind == "retrieval.called":
            seen_calls.add(step)
            pending_retrievals[step] = _str(payload.get("index_name"))
            view.sequence.append((step, "retrieval"))
        elif kind == "retrieval.responded":
            if step in seen_retrievals:
                continue
            seen_retrievals.add(step)
            index = _str(payload.get("index_name")) or pending_retrievals.get(step)
            view.retrievals.append(
                Retrieval(step, index, _int(payload.get("result_count")), _float(payload.get("top_score")))
            )
        elif kind == "external.signal":
            if payload.get("signal_name") == "prompt_injection":
                view.injections.append(payload)
        elif kind in ("run.completed", "run.errored") and view.terminal is None:
            view.terminal = "completed" if kind == "run.completed" else "errored"
            view.exit_reason = _str(payload.get("exit_reason"))
            view.error_type = _str(payload.get("error_type"))
            view.terminal_step = step
            total = _int(payload.get("total_steps"))
            if total is not None:
                max_step = max(max_step, total)
    view.total_steps = max_step
    return view


#: Longest list a piece of evidence carries (step lists of long runs).
EVIDENCE_LIST_LIMIT = 50


def capped(values: Iterable[Any], limit: int = EVIDENCE_LIST_LIMIT) -> list[Any]:
    """At most ``limit`` values, so evidence stays small on a long run."""
    out: list[Any] = []
    for value in values:
        if len(out) >= limit:
            break
        out.append(value)
    return out


def plural(count: int | float, one: str, many: str | None = None) -> str:
    """``"1 call"``, ``"3 calls"``: for explanations."""
    word = one if count == 1 else (many or one + "s")
    return f"{count:g} {word}" if isinstance(count, float) else f"{count} {word}"
