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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LlmCall", "Retrieval", "RunView", "ToolCall", "capped", "plural", "read_rows", "read_run"]

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
    #: Prompt-injection evidence: ``run.started.payload.injection_signal``
    #: objects, and (from older SDKs, which sent it apart) ``external.signal``
    #: payloads with ``signal_name == "prompt_injection"``.
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


def read_run(events: Iterable[dict[str, Any]], prior_step_counts: Sequence[int] = ()) -> RunView:
    """Read one run's wire events (any order) into a :class:`RunView`.

    Wire dicts may come from anywhere (tests, a hand-written file): a step
    or a time of the wrong type is read as 0, a payload that is not an
    object as an empty one."""
    items: list[tuple[int, float, int, float | None, Any, dict[str, Any]]] = []
    given: dict[int, dict[str, Any]] = {}
    for position, event in enumerate(events):
        if isinstance(event, dict):
            step, ts = _int(event.get("step_index")), _float(event.get("timestamp"))
            payload = event.get("payload")
            items.append((step or 0, ts or 0.0, position, ts, event.get("event_type"),
                          payload if isinstance(payload, dict) else {}))  # fmt: skip
            given[position] = event
    first = given[min(items)[2]] if items else {}  # the first in step order names the run
    return _view(str(first.get("run_id") or ""), str(first.get("agent_id") or ""), items, prior_step_counts)


def read_rows(run_id: str, rows: Sequence[Sequence[Any]], prior_step_counts: Sequence[int] = ()) -> RunView:
    """:func:`read_run` for one run's rows as the collector stores them
    (``schema.ROW_FIELDS``): checked at ingest, so the step is an integer,
    the time a number and the payload an object, and no dict is built."""
    items = [(row[4], row[5], position, row[5], row[1], row[7]) for position, row in enumerate(rows)]
    agent_id = str(rows[min(items)[2]][2]) if items else ""
    return _view(run_id, agent_id, items, prior_step_counts)


def _view(
    run_id: str,
    agent_id: str,
    items: list[tuple[int, float, int, float | None, Any, dict[str, Any]]],
    prior_step_counts: Sequence[int],
) -> RunView:
    """The view of one run's events, given as (step, time as a sort key,
    arrival position, time, event_type, payload) in any order.

    This loop runs once for every event the collector judges: the common
    event types come first, and values of the right type are taken without
    a call."""
    # By step, then time; events of one step and time keep their arrival
    # order, which the SDK makes called-before-responded. The position is
    # unique, so the sort never compares further.
    items.sort()
    view = RunView(run_id=run_id, agent_id=agent_id, prior_step_counts=tuple(prior_step_counts))
    tool_calls = view.tool_calls
    llm_calls = view.llm_calls
    sequence = view.sequence
    tools: dict[int, ToolCall] = {}
    llms: dict[int, LlmCall] = {}
    pending_retrievals: dict[int, str | None] = {}
    # Each call has its own step, so a second *.called at a step is a resent
    # copy (delivery is at least once): counting it would invent a repeat.
    seen_calls: set[int] = set()
    seen_retrievals: set[int] = set()
    max_step = 0
    for step, _key, _position, ts, kind, payload in items:
        if step > max_step:  # noqa: PLR1730 - a call to max() per event costs more
            max_step = step
        if kind == "llm.called":
            if step in seen_calls:
                continue
            seen_calls.add(step)
            tokens = payload.get("prompt_tokens")
            llm = LlmCall(step, tokens if type(tokens) is int and tokens >= 0 else _int(tokens), None, None, None, ts)
            llms[step] = llm
            llm_calls.append(llm)
            sequence.append((step, "llm"))
        elif kind == "llm.responded":
            llm = llms.get(step)  # type: ignore[assignment]
            if llm is None:
                llm = llms[step] = LlmCall(step)
                llm_calls.append(llm)
                sequence.append((step, "llm"))
            llm.responded = True
            # The provider's own count, when the response carries one, is the
            # exact figure; the count at call time may be an estimate.
            tokens = _int(payload.get("prompt_tokens"))
            if tokens is not None:
                llm.prompt_tokens = tokens
            reason = payload.get("finish_reason")
            llm.finish_reason = reason if type(reason) is str and reason else _str(reason)
            length = payload.get("output_length")
            llm.output_length = length if type(length) is int and length >= 0 else _int(length)
            latency = payload.get("latency_ms")
            llm.latency_ms = latency if type(latency) is float and math.isfinite(latency) else _float(latency)
            llm.ended = ts
        elif kind == "tool.called":
            if step in seen_calls:
                continue
            seen_calls.add(step)
            name = payload.get("tool_name")
            args = payload.get("args_hash")
            call = ToolCall(step, name if type(name) is str and name else _str(name) or "unknown",
                            args if type(args) is str and args else _str(args), None, None, None, ts)  # fmt: skip
            tools[step] = call
            tool_calls.append(call)
            sequence.append((step, "tool"))
        elif kind == "tool.responded":
            call = tools.get(step)  # type: ignore[assignment]
            if call is None:  # a response without its call: still an outcome
                call = tools[step] = ToolCall(step, _str(payload.get("tool_name")) or "unknown")
                tool_calls.append(call)
                sequence.append((step, "tool"))
            success = payload.get("success")
            call.success = success if isinstance(success, bool) else None
            latency = payload.get("latency_ms")
            call.latency_ms = latency if type(latency) is float and math.isfinite(latency) else _float(latency)
            call.error_hash = _str(payload.get("error_hash"))
            call.ended = ts
        elif kind == "run.started":
            names = payload.get("tools")
            if isinstance(names, list):
                view.tools_available = [n for n in names if isinstance(n, str) and n]
            found = payload.get("injection_signal")
            if isinstance(found, dict) and found:
                view.injections.append(found)
        elif kind == "retrieval.called":
            if step in seen_calls:
                continue
            seen_calls.add(step)
            pending_retrievals[step] = _str(payload.get("index_name"))
            sequence.append((step, "retrieval"))
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
