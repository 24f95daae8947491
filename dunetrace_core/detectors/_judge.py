"""One run's detector state, fed one event at a time.

:class:`RunJudge` keeps windows and counters, never the run's events, so its
cost per event does not grow with the run and its memory is bounded. Each
event type has one method that updates only what that type can change: the
common path of an event (a tool that succeeded, an LLM call that stopped
normally) is a few integer updates and comparisons; work that allocates
happens on the rare path (a failure, a detector firing). A detector that is
off or has fired has its threshold set out of reach, so its check costs one
comparison.

The same class judges in the agent's process (the live watcher, where
``ts`` is None and the run's clock stamps what needs a time) and at the
collector (which passes each stored event's timestamp). A detector fires at
most once per run, at the event that makes its condition true; what it
reports (:meth:`finding`) describes the run so far.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ._evidence import EvidenceMixin

__all__ = ["ANSWERED_EXIT_REASONS", "HANDLERS", "RunJudge"]

from ._common import ANSWERED_EXIT_REASONS, LIST_LIMIT, OFF, STOPPED, TOOL_FINISH, TRUNCATED, UNUSUAL
from ._common import count as _count
from ._common import name as _name
from ._common import no_clock as _no_clock
from ._common import number as _number
from ._tools import ToolCalls


def _read_thresholds(p: Mapping[str, Mapping[str, Any]]) -> tuple[Any, ...]:
    """The thresholds of ``RunJudge._thresholds``, in its order, from one
    agent's settings; a detector that is off has its threshold out of reach."""

    def get(name: str, key: str) -> Any:
        settings = p[name]
        return settings[key] if settings["enabled"] else OFF

    th_window = get("TOOL_THRASHING", "window")
    if th_window != OFF and th_window < 2:
        th_window = OFF  # alternation needs two calls at least
    ctx = p["CONTEXT_BLOAT"]
    slow = p["SLOW_STEP"]
    on = slow["enabled"]
    rag = p["RAG_EMPTY_RETRIEVAL"]
    return (
        get("TOOL_LOOP", "threshold"),
        p["TOOL_LOOP"]["window"],
        th_window,
        get("SCATTERSHOT_TOOL_USE", "min_distinct"),
        p["SCATTERSHOT_TOOL_USE"]["window"],
        get("RETRY_STORM", "threshold"),
        get("CASCADING_TOOL_FAILURE", "threshold"),
        get("LLM_TRUNCATION_LOOP", "threshold"),
        ctx["min_calls"] if ctx["enabled"] else OFF,
        ctx["growth_factor"],
        ctx["min_last_tokens"],
        slow["tool_seconds"] * 1000.0 if on else float("inf"),
        slow["llm_seconds"] * 1000.0 if on else float("inf"),
        get("REASONING_STALL", "min_llm_calls"),
        p["REASONING_STALL"]["ratio_threshold"],
        rag["min_results"],
        rag["min_score"],
        p["FIRST_STEP_FAILURE"]["max_step"] if p["FIRST_STEP_FAILURE"]["enabled"] else -1,
        get("OVERSIZED_TOOL_ARGUMENTS", "max_chars"),
        get("EXCESSIVE_RETRIEVAL", "threshold"),
        get("RUNAWAY_ITERATION", "max_steps"),
        get("RUNAWAY_ITERATION", "max_tokens"),
    )


#: id(settings) -> (settings, thresholds): the settings held, so the id is theirs.
_THRESHOLDS: dict[int, tuple[Any, tuple[Any, ...]]] = {}


class RunJudge(ToolCalls, EvidenceMixin):
    """The detectors of one run. Feed events with the method in ``on`` for
    their type (``judge.on[event_type](step, payload, ts)``) or with
    :meth:`observe`; names of detectors that fired collect in ``new``
    (take them and clear the list) and, with their step, in ``fired``."""

    __slots__ = (
        "_cf_max",
        "_ctx_growth",
        "_ctx_min_calls",
        "_ctx_min_last",
        "_ctx_need",
        "_failing",
        "_first_max",
        "_llm_at_action",
        "_llm_limit",
        "_llm_step",
        "_llm_t",
        "_llm_tokens",
        "_loop_counts",
        "_loop_max",
        "_loop_win",
        "_loop_window",
        "_max_args",
        "_max_retrievals",
        "_max_steps",
        "_max_tokens",
        "_min_results",
        "_min_score",
        "_on",
        "_ret_step",
        "_rs_max",
        "_sc_min",
        "_sc_win",
        "_sc_window",
        "_stall_min",
        "_stall_ratio",
        "_th_a",
        "_th_b",
        "_th_len",
        "_th_prev",
        "_th_prev2",
        "_th_prev_step",
        "_th_start",
        "_th_window",
        "_tool_args",
        "_tool_awaiting",
        "_tool_limit",
        "_tool_step",
        "_tool_t",
        "_total_steps",
        "_trunc_max",
        "_unread_step",
        "_unread_tool",
        "agent_id",
        "ancestors",
        "cf_best",
        "cf_cur",
        "clock",
        "content_injections",
        "ctx_first",
        "ctx_first_step",
        "ctx_last",
        "ctx_last_step",
        "ctx_n",
        "dropped_events",
        "empties",
        "error_type",
        "exit_reason",
        "fired",
        "first_failure",
        "injections",
        "last_llm_finish",
        "last_tool",
        "last_tool_failed",
        "last_tool_step",
        "llm_calls",
        "llm_responses",
        "loop_hit",
        "model",
        "model_change_step",
        "models",
        "new",
        "oversized",
        "params",
        "pending_retrieval",
        "pending_tool",
        "per_tool",
        "retrievals",
        "rs_best",
        "rs_cur",
        "run_id",
        "scatter",
        "slow",
        "terminal",
        "terminal_step",
        "thrash_best",
        "tool_calls",
        "tools_available",
        "total_tokens",
        "truncations",
        "unread",
        "weak_retrievals",
    )

    def __init__(
        self,
        params: Mapping[str, Mapping[str, Any]],
        *,
        run_id: str = "",
        agent_id: str = "",
        clock: Callable[[], float] | None = None,
        ancestors: Sequence[str] | None = None,
    ) -> None:
        """``params``: every detector's settings for this run's agent
        (``DetectorSettings.for_agent``). ``clock`` stamps events fed
        without a time; ``ancestors`` are the agent ids of the runs that
        started this one, nearest first (DELEGATION_LOOP)."""
        self.params = params
        self.fired: dict[str, int] = {}
        self.new: list[str] = []
        self.clock = clock or _no_clock
        self.run_id, self.agent_id = run_id, agent_id
        self.ancestors = list(ancestors) if ancestors else []
        self._on: dict[str, Callable[[int, dict[str, Any], float | None], None]] | None = None
        self.tools_available: list[str] = []
        self.tool_calls = self.llm_calls = self.retrievals = self._llm_at_action = self._total_steps = 0
        self.pending_tool = self.llm_responses = self.pending_retrieval = self.total_tokens = 0
        self.terminal: str | None = None
        self.exit_reason: str | None = None
        self.error_type: str | None = None
        self.terminal_step: int | None = None
        self.dropped_events = 0
        self._tool_step = self._llm_step = -1
        self._tool_t: float | None = None
        self._llm_t: float | None = None
        self._tool_args: str | None = None
        self._tool_awaiting = False
        self.last_tool: str | None = None
        self.last_tool_step = 0
        self._llm_tokens: int | None = None
        self._failing = False  # a failure streak or an unread failure is open
        self.per_tool: dict[str, list[Any]] = {}
        self._loop_win: deque[str] = deque()
        self._loop_counts: dict[str, int] = {}
        self.loop_hit: str | None = None
        self._th_prev: str | None = None
        self._th_prev2: str | None = None
        self._th_prev_step = self._th_len = self._th_start = 0
        self._th_a = self._th_b = ""
        self.thrash_best: tuple[int, str, str, int, int] | None = None
        self._sc_win: deque[str] = deque()
        self.scatter: tuple[int, int, list[str]] | None = None
        self.rs_cur: list[Any] | None = None
        self.rs_best: list[Any] | None = None
        self.cf_cur: list[Any] | None = None
        self.cf_best: list[Any] | None = None
        self.truncations: list[Any] = []  # [count, steps, prompt tokens]
        self.empties: list[Any] = []  # [count, steps]
        self.ctx_n = self.ctx_first = self.ctx_first_step = self.ctx_last = self.ctx_last_step = 0
        self._ctx_need = 0.0
        self.slow: list[Any] = []  # [count, worst (ratio, duration, limit, step, kind, tool)]
        self.weak_retrievals: list[Any] = []  # [count, worst (sort key, step, index, count, score)]
        self.first_failure: dict[str, Any] | None = None
        self.injections: list[dict[str, Any]] = []
        self.content_injections: list[tuple[int, str, dict[str, Any]]] = []
        self.oversized: list[Any] = []
        self._ret_step = 0
        self.last_llm_finish: str | None = None
        self.last_tool_failed = False
        self.unread: tuple[int, str, int] | None = None
        self._unread_step = 0
        self._unread_tool = ""
        self.model: str | None = None
        self.models: list[str] = []
        self.model_change_step = 0
        self._thresholds()

    def _thresholds(self) -> None:
        # Every run of an agent shares one settings dict (DetectorSettings.
        # for_agent, which is not to be changed): the thresholds are read
        # from it once, and each run takes a copy of the tuple.
        p = self.params
        cached = _THRESHOLDS.get(id(p))
        if cached is None or cached[0] is not p:
            cached = (p, _read_thresholds(p))
            if len(_THRESHOLDS) >= 64:
                _THRESHOLDS.clear()
            _THRESHOLDS[id(p)] = cached
        (
            self._loop_max,
            self._loop_window,
            self._th_window,
            self._sc_min,
            self._sc_window,
            self._rs_max,
            self._cf_max,
            self._trunc_max,
            self._ctx_min_calls,
            self._ctx_growth,
            self._ctx_min_last,
            self._tool_limit,
            self._llm_limit,
            self._stall_min,
            self._stall_ratio,
            self._min_results,
            self._min_score,
            self._first_max,
            self._max_args,
            self._max_retrievals,
            self._max_steps,
            self._max_tokens,
        ) = cached[1]

    # -- firing ----------------------------------------------------------------

    def _fire(self, name: str, step: int) -> bool:
        if name in self.fired or not self.params[name]["enabled"]:
            return False
        self.fired[name] = step
        self.new.append(name)
        return True

    @property
    def on(self) -> dict[str, Callable[[int, dict[str, Any], float | None], None]]:
        """Event type -> this judge's method for it (made on first use:
        the live watcher calls the methods through :data:`HANDLERS`)."""
        on = self._on
        if on is None:
            on = self._on = {kind: getattr(self, method.__name__) for kind, method in HANDLERS.items()}
        return on

    def observe(self, event_type: str, step: int, payload: dict[str, Any], ts: float | None = None) -> list[str]:
        """Feed one event; the names of the detectors it made fire."""
        handler = HANDLERS.get(event_type)
        if handler is not None:
            handler(self, step, payload, ts)
        new, self.new = self.new, []
        return new

    def _now(self, ts: float | None) -> float | None:
        return ts if ts is not None else self.clock()

    # -- tools -------------------------------------------------------------------

    def llm_called(self, step: int, payload: dict[str, Any], ts: float | None) -> None:
        calls = self.llm_calls = self.llm_calls + 1
        if self._failing:
            self._unread_step = 0  # the model is called: it sees the failure
        self._llm_step = step
        if step > self._max_steps:
            self._runaway(step)
        self._llm_t = ts if ts is not None else self.clock()
        tokens = payload.get("prompt_tokens")
        if tokens is not None:
            if type(tokens) is not int or tokens <= 0:
                tokens = _count(tokens) or None
            if tokens is not None:  # CONTEXT_BLOAT, inline: this is every model call
                n = self.ctx_n = self.ctx_n + 1
                if n == 1:
                    self._first_tokens(step, tokens)
                self.ctx_last, self.ctx_last_step = tokens, step
                if n >= self._ctx_min_calls and tokens >= self._ctx_need:
                    self._bloat(step)
        self._llm_tokens = tokens
        model = payload.get("model")
        if model is not None and model != self.model:
            self._model(step, model)
        if (
            calls >= self._stall_min
            and calls >= self._stall_ratio * (self.tool_calls or 1)
            and (self.tool_calls or self.tools_available)
        ):
            self._fire("REASONING_STALL", step)
            self._stall_min = OFF

    def _model(self, step: int, model: Any) -> None:
        if type(model) is not str or not model:
            return
        if self.model is None:
            self.model = model
            self.models.append(model)
            return
        if model not in self.models and len(self.models) < 10:
            self.models.append(model)
        if not self.model_change_step:
            self.model_change_step = step
            self._fire("MODEL_FALLBACK_DRIFT", step)

    def llm_responded(self, step: int, payload: dict[str, Any], ts: float | None) -> None:
        self.llm_responses += 1
        tokens = payload.get("prompt_tokens")
        if tokens is not None and (type(tokens) is not int or tokens <= 0):
            tokens = _count(tokens) or None
        counted = self._llm_tokens if step == self._llm_step else None
        if tokens is None:
            tokens = counted
        elif counted is None:
            self._context(step, tokens)  # the call had no count: the response's counts
        elif tokens != counted:
            self._recount(step, tokens)  # the provider's own count is the exact one
        self._llm_tokens = None
        completion = payload.get("completion_tokens")
        if type(completion) is int and completion > 0:
            self.total_tokens += completion
        if tokens is not None:
            self.total_tokens += tokens
        if self.total_tokens > self._max_tokens:
            self._runaway(step)
        finish = payload.get("finish_reason")
        if type(finish) is not str:
            finish = None
        self.last_llm_finish = finish
        length = payload.get("output_length")
        if finish in UNUSUAL or length == 0:
            self._llm_unusual(step, finish, _count(length))
        latency = payload.get("latency_ms")
        if (type(latency) is not float and type(latency) is not int) or latency != latency or latency < 0:
            latency = None
            if step == self._llm_step and self._llm_t is not None:
                now = self._now(ts)
                if now is not None and now >= self._llm_t:
                    latency = (now - self._llm_t) * 1000.0
        if latency is not None and latency > self._llm_limit:
            self._slow(step, latency, self._llm_limit, "llm", None)

    def _llm_unusual(self, step: int, finish: str | None, length: int | None) -> None:
        if finish in TRUNCATED:
            cut = self.truncations
            if not cut:
                cut.extend((0, [], []))
            cut[0] += 1
            if len(cut[1]) < LIST_LIMIT:
                cut[1].append(step)
                tokens = self.ctx_last if self.ctx_n and self.ctx_last_step == step else None
                if tokens is not None:
                    cut[2].append(tokens)
            if cut[0] >= self._trunc_max:
                self._fire("LLM_TRUNCATION_LOOP", step)
        if length == 0 and finish in STOPPED:
            empty = self.empties
            if not empty:
                empty.extend((0, []))
            empty[0] += 1
            if len(empty[1]) < LIST_LIMIT:
                empty[1].append(step)
            self._fire("EMPTY_LLM_RESPONSE", step)
        if step <= self._first_max and self.first_failure is None:
            if finish == "error":
                self.first_failure = {"trigger": "llm_error", "step": step}
            elif length == 0 and finish not in TOOL_FINISH:
                self.first_failure = {"trigger": "empty_llm_output", "step": step}
            if self.first_failure is not None:
                self._fire("FIRST_STEP_FAILURE", step)

    def _context(self, step: int, tokens: int) -> None:
        n = self.ctx_n = self.ctx_n + 1
        if n == 1:
            self._first_tokens(step, tokens)
        self.ctx_last, self.ctx_last_step = tokens, step
        if n >= self._ctx_min_calls and tokens >= self._ctx_need:
            self._bloat(step)

    def _first_tokens(self, step: int, tokens: int) -> None:
        self.ctx_first, self.ctx_first_step = tokens, step
        # The prompt size that could make it fire, a hair under the exact
        # check in _bloat: one comparison per call until then.
        self._ctx_need = max(self._ctx_min_last, self._ctx_growth * tokens) * (1 - 1e-9)

    def _recount(self, step: int, tokens: int) -> None:
        """The response of the call counted last reports another count."""
        if self.ctx_last_step == step:
            self.ctx_last = tokens
            if self.ctx_first_step == step:
                self._first_tokens(step, tokens)
            if self.ctx_n >= self._ctx_min_calls:
                self._bloat(step)

    def _bloat(self, step: int) -> None:
        last = self.ctx_last
        if last >= self._ctx_min_last and last / self.ctx_first >= self._ctx_growth:
            self._fire("CONTEXT_BLOAT", step)
            self._ctx_min_calls = OFF

    # -- retrieval ---------------------------------------------------------------

    def retrieval_called(self, step: int, payload: dict[str, Any], ts: float | None) -> None:
        self.retrievals += 1
        self._llm_at_action = self.llm_calls
        self.pending_retrieval += 1
        self._ret_step = step
        if step > self._max_steps:
            self._runaway(step)
        if self.retrievals >= self._max_retrievals:
            self._fire("EXCESSIVE_RETRIEVAL", step)
            self._max_retrievals = OFF

    def retrieval_responded(self, step: int, payload: dict[str, Any], ts: float | None) -> None:
        self.pending_retrieval -= 1
        count = _count(payload.get("result_count"))
        score = _number(payload.get("top_score"))
        if (count is not None and count < self._min_results) or (score is not None and score < self._min_score):
            key = (count if count is not None else 1 << 30, score or 0.0)
            worst = (key, step, _name(payload.get("index_name")), count, score)
            if not self.weak_retrievals:
                self.weak_retrievals = [1, worst]
            else:
                self.weak_retrievals[0] += 1
                if key < self.weak_retrievals[1][0]:
                    self.weak_retrievals[1] = worst
        if "injection_signal" in payload:
            self._content_injection(step, "retrieval", payload)

    # -- the run -----------------------------------------------------------------

    def run_started(self, step: int, payload: dict[str, Any], ts: float | None) -> None:
        names = payload.get("tools")
        if isinstance(names, list):
            self.tools_available = [n for n in names if isinstance(n, str) and n]
        found = payload.get("injection_signal")
        if isinstance(found, dict) and found:
            self._prompt_injection(step, found)
        cycles = self.params["DELEGATION_LOOP"]["min_cycles"]
        if self.ancestors and self.ancestors.count(self.agent_id) >= cycles:
            self._fire("DELEGATION_LOOP", step)

    def external_signal(self, step: int, payload: dict[str, Any], ts: float | None) -> None:
        # Older SDKs sent the input's injection evidence apart, like this.
        if payload.get("signal_name") == "prompt_injection":
            self._prompt_injection(step, payload)

    def run_completed(self, step: int, payload: dict[str, Any], ts: float | None) -> None:
        if self.terminal is not None:
            return
        self.terminal, self.terminal_step = "completed", step
        self.exit_reason = _name(payload.get("exit_reason"))
        self._ended(step, payload)

    def run_errored(self, step: int, payload: dict[str, Any], ts: float | None) -> None:
        if self.terminal is not None:
            return
        self.terminal, self.terminal_step = "errored", step
        self.error_type = _name(payload.get("error_type"))
        if step <= self._first_max and self.first_failure is None:
            self.first_failure = {"trigger": "run_errored", "error_type": self.error_type, "step": step}
            self._fire("FIRST_STEP_FAILURE", step)
        self._ended(step, payload)

    @property
    def answered(self) -> bool:
        return self.terminal == "completed" and (self.exit_reason or "completed") in ANSWERED_EXIT_REASONS

    def _ended(self, step: int, payload: dict[str, Any]) -> None:
        total = _count(payload.get("total_steps"))
        if total is not None:
            self._total_steps = total
        self.dropped_events = _count(payload.get("dropped_events")) or 0
        if self.answered:
            if (
                self.tools_available
                and not self.tool_calls
                and self.llm_calls >= self.params["TOOL_AVOIDANCE"]["min_llm_calls"]
            ):
                self._fire("TOOL_AVOIDANCE", step)
            if self.weak_retrievals:
                self._fire("RAG_EMPTY_RETRIEVAL", self.weak_retrievals[1][1])
            if self.last_llm_finish in TRUNCATED:
                self._fire("SILENT_TRUNCATION", self._llm_step)
            if self.last_tool_failed and self.llm_streak <= self.params["PREMATURE_TERMINATION"]["max_llm_calls_after"]:
                self._fire("PREMATURE_TERMINATION", step)
        else:
            self._abandoned()
        unanswered = (
            max(self.pending_tool, 0) + max(self.llm_calls - self.llm_responses, 0) + max(self.pending_retrieval, 0)
        )
        if self.dropped_events or unanswered > self.params["INSTRUMENTATION_DEGRADED"]["max_unanswered"]:
            self._fire("INSTRUMENTATION_DEGRADED", step)

    def end(self) -> list[str]:
        """The run went silent (no terminal event): what that makes fire."""
        if self.terminal is None:
            self._abandoned()
        new, self.new = self.new, []
        return new

    def _abandoned(self) -> None:
        if self.tool_calls and self.llm_streak >= self.params["GOAL_ABANDONMENT"]["stall_steps"]:
            self._fire("GOAL_ABANDONMENT", self.last_action_step)

    @property
    def llm_streak(self) -> int:
        """LLM calls since the last tool call or retrieval."""
        return self.llm_calls - self._llm_at_action

    @property
    def max_step(self) -> int:
        """The run's highest step so far."""
        return max(self._tool_step, self._llm_step, self._ret_step, self._total_steps, 0)

    @property
    def last_action_step(self) -> int:
        """The step of the run's last tool, LLM or retrieval call."""
        return max(self._tool_step, self._llm_step, self._ret_step, 0)

    @property
    def last_llm_step(self) -> int:
        return max(self._llm_step, 0)

    def _runaway(self, step: int) -> None:
        if self._fire("RUNAWAY_ITERATION", step):
            self._max_steps = self._max_tokens = OFF

    # -- content evidence ---------------------------------------------------------

    def _prompt_injection(self, step: int, found: dict[str, Any]) -> None:
        if len(self.injections) < 20:
            self.injections.append(found)
        if self.injection_matches() >= self.params["PROMPT_INJECTION_SIGNAL"]["min_matches"]:
            self._fire("PROMPT_INJECTION_SIGNAL", 0)

    def _content_injection(self, step: int, kind: str, payload: dict[str, Any]) -> None:
        found = payload.get("injection_signal")
        if not isinstance(found, dict) or not found:
            return
        where = _name(payload.get("tool_name" if kind == "tool" else "index_name")) or "unknown"
        if len(self.content_injections) < 20:
            self.content_injections.append((step, f"{kind}:{where}"[:64], found))
        if self.content_matches() >= self.params["RETRIEVED_CONTENT_INJECTION"]["min_matches"]:
            self._fire("RETRIEVED_CONTENT_INJECTION", step)


#: Event type -> the RunJudge method that takes it, unbound:
#: ``HANDLERS[event_type](judge, step, payload, ts)``.
HANDLERS: dict[str, Callable[[RunJudge, int, dict[str, Any], float | None], None]] = {
    "tool.called": RunJudge.tool_called,
    "tool.responded": RunJudge.tool_responded,
    "llm.called": RunJudge.llm_called,
    "llm.responded": RunJudge.llm_responded,
    "retrieval.called": RunJudge.retrieval_called,
    "retrieval.responded": RunJudge.retrieval_responded,
    "run.started": RunJudge.run_started,
    "run.completed": RunJudge.run_completed,
    "run.errored": RunJudge.run_errored,
    "external.signal": RunJudge.external_signal,
}
