"""The tool-call part of a run's detector state: TOOL_LOOP, TOOL_THRASHING,
SCATTERSHOT_TOOL_USE, RETRY_STORM, CASCADING_TOOL_FAILURE,
OVERSIZED_TOOL_ARGUMENTS, UNREAD_TOOL_ERROR, FIRST_STEP_FAILURE's tool
failures and SLOW_STEP. A mixin of :class:`RunJudge`, which holds the state
(its slots)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._common import LIST_LIMIT, OFF
from ._common import name as _name

if TYPE_CHECKING:
    from ._judge import RunJudge

__all__ = ["ToolCalls"]


class ToolCalls:
    """``tool.called`` and ``tool.responded`` for :class:`RunJudge`."""

    __slots__ = ()

    # The state these methods share with RunJudge, which sets it up (its
    # slots): declared here so that its types are known on both sides.
    _max_steps: int
    _max_args: int
    _loop_max: int
    _loop_window: int
    _th_window: int
    _sc_min: int
    _sc_window: int
    _rs_max: int
    _cf_max: int
    _first_max: int
    _tool_limit: float
    _failing: bool
    _th_prev: str | None
    _th_prev2: str | None
    _th_prev_step: int
    _unread_step: int
    _unread_tool: str
    last_tool: str | None
    loop_hit: str | None
    thrash_best: tuple[int, str, str, int, int] | None
    scatter: tuple[int, int, list[str]] | None
    rs_cur: list[Any] | None
    rs_best: list[Any] | None
    cf_cur: list[Any] | None
    cf_best: list[Any] | None
    first_failure: dict[str, Any] | None
    unread: tuple[int, str, int] | None

    def tool_called(self: RunJudge, step: int, payload: dict[str, Any], ts: float | None) -> None:  # type: ignore[misc]
        name = payload.get("tool_name")
        if type(name) is not str or not name:
            name = "unknown"
        args = payload.get("args_hash")
        if type(args) is not str or not args:
            args = None
        self.tool_calls += 1
        self._llm_at_action = self.llm_calls
        self.pending_tool += 1
        if step > self._max_steps:
            self._runaway(step)
        self._tool_step = self.last_tool_step = step
        self.last_tool = name
        self._tool_t = ts if ts is not None else self.clock()
        self._tool_args = args
        if self._failing:
            self._call_after_failure(name, step)
        self._tool_awaiting = True
        size = payload.get("args_length")
        if type(size) is int and size > self._max_args:
            self.oversized = [step, name, size, self.params["OVERSIZED_TOOL_ARGUMENTS"]["max_chars"]]
            if self._fire("OVERSIZED_TOOL_ARGUMENTS", step):
                self._max_args = OFF
        # Per tool, for the evidence: calls, first and last step, steps,
        # argument hashes, calls without one, failures, most in one window.
        stats = self.per_tool.get(name)
        if stats is None:
            stats = self.per_tool[name] = [0, step, step, [], set(), 0, 0, 0]
        stats[0] += 1
        stats[2] = step
        if len(stats[3]) < LIST_LIMIT:
            stats[3].append(step)
        if args is None:
            stats[5] += 1
        elif len(stats[4]) < LIST_LIMIT:
            stats[4].add(args)
        # TOOL_LOOP: counts of the last `window` calls.
        window, counts = self._loop_win, self._loop_counts
        window.append(name)
        count = counts[name] = counts.get(name, 0) + 1
        if len(window) > self._loop_window:
            gone = window.popleft()
            # get/pop, not [] and del: LangGraph runs parallel tool calls of
            # one run on several threads, and a lost update must not raise.
            left = counts.get(gone, 1) - 1
            if left > 0:
                counts[gone] = left
            else:
                counts.pop(gone, None)
            if gone == name:
                count -= 1
        if count > stats[7]:
            stats[7] = count
        if count >= self._loop_max:
            self.loop_hit = name
            self._fire("TOOL_LOOP", step)
            self._loop_max = OFF
        # TOOL_THRASHING: the length of the A, B, A, B... run ending here
        # (inline: this is every tool call).
        prev = self._th_prev
        if prev is None or name == prev:
            self._th_len, self._th_a, self._th_b, self._th_start = 1, name, "", step
        elif self._th_len >= 2 and name == self._th_prev2:
            self._th_len += 1
        else:
            self._th_len, self._th_a, self._th_b, self._th_start = 2, prev, name, self._th_prev_step
        self._th_prev2, self._th_prev, self._th_prev_step = prev, name, step
        if self._th_len >= self._th_window:
            self._thrashing(step)
        if self._sc_min != OFF:
            # SCATTERSHOT_TOOL_USE: the last `window` calls; their distinct
            # tools are counted only once the run has used enough tools.
            window = self._sc_win
            window.append(name)
            if len(window) > self._sc_window:
                window.popleft()
            if len(self.per_tool) >= self._sc_min:
                self._scatter(step)

    def _thrashing(self: RunJudge, step: int) -> None:  # type: ignore[misc]
        length = self._th_len
        best = self.thrash_best
        if best is None or length > best[0]:
            self.thrash_best = (length, self._th_a, self._th_b, self._th_start, step)
        self._fire("TOOL_THRASHING", step)

    def _scatter(self: RunJudge, step: int) -> None:  # type: ignore[misc]
        distinct = set(self._sc_win)
        if len(distinct) >= self._sc_min:
            self.scatter = (step, len(distinct), sorted(distinct)[:LIST_LIMIT])
            self._fire("SCATTERSHOT_TOOL_USE", step)
            self._sc_min = OFF

    def _call_after_failure(self: RunJudge, name: str, step: int) -> None:  # type: ignore[misc]
        """A tool call while a failure streak or an unread failure is open."""
        if self._unread_step and name != self._unread_tool:  # the same tool again is a retry
            self.unread = (self._unread_step, self._unread_tool, step)
            self._fire("UNREAD_TOOL_ERROR", step)
            self._unread_step = 0
        if self._tool_awaiting:
            # The previous call never got an outcome: it breaks the streaks.
            self.rs_cur = self.cf_cur = None
        elif self.rs_cur is not None and name != self.rs_cur[0]:
            self.rs_cur = None
        self._failing = self.rs_cur is not None or self.cf_cur is not None

    def tool_responded(self: RunJudge, step: int, payload: dict[str, Any], ts: float | None) -> None:  # type: ignore[misc]
        self.pending_tool -= 1
        self._tool_awaiting = False
        latency = payload.get("latency_ms")
        if (type(latency) is not float and type(latency) is not int) or latency != latency or latency < 0:
            latency = None
            if step == self._tool_step and self._tool_t is not None:
                now = self._now(ts)
                if now is not None and now >= self._tool_t:
                    latency = (now - self._tool_t) * 1000.0
        if latency is not None and latency > self._tool_limit:
            name = _name(payload.get("tool_name")) or self.last_tool or "unknown"
            self._slow(step, latency, self._tool_limit, "tool", name)
        if payload.get("success") is False:
            self._tool_failed(step, payload)
        else:
            self.last_tool_failed = False
            if self._failing:
                self.rs_cur = self.cf_cur = None
                self._unread_step = 0
                self._failing = False
        if "injection_signal" in payload:
            self._content_injection(step, "tool", payload)

    def _tool_failed(self: RunJudge, step: int, payload: dict[str, Any]) -> None:  # type: ignore[misc]
        name = _name(payload.get("tool_name")) or self.last_tool or "unknown"
        stats = self.per_tool.get(name)
        if stats is not None:
            stats[6] += 1
        args = self._tool_args if step == self._tool_step else None
        error = _name(payload.get("error_hash"))
        self._failing = self.last_tool_failed = True
        self._unread_step, self._unread_tool = step, name
        # RETRY_STORM: [tool, count, steps, args, errors]
        cur = self.rs_cur
        if cur is None or cur[0] != name:
            cur = self.rs_cur = [name, 0, [], [], []]
        cur[1] += 1
        if len(cur[2]) < LIST_LIMIT:
            cur[2].append(step)
            cur[3].append(args)
            cur[4].append(error)
        if self.rs_best is None or cur[1] > self.rs_best[1]:
            self.rs_best = cur
        if cur[1] >= self._rs_max:
            self._fire("RETRY_STORM", step)
        # CASCADING_TOOL_FAILURE: [count, tools, steps]
        cf = self.cf_cur
        if cf is None:
            cf = self.cf_cur = [0, set(), []]
        cf[0] += 1
        cf[1].add(name)
        if len(cf[2]) < LIST_LIMIT:
            cf[2].append(step)
        if cf[0] >= self._cf_max and len(cf[1]) >= 2:
            if self.cf_best is None or cf[0] > self.cf_best[0]:
                self.cf_best = cf
            self._fire("CASCADING_TOOL_FAILURE", step)
        if step <= self._first_max and self.first_failure is None:
            self.first_failure = {"trigger": "tool_failure", "tool": name, "step": step}
            self._fire("FIRST_STEP_FAILURE", step)

    def _slow(self: RunJudge, step: int, duration: float, limit: float, kind: str, tool: str | None) -> None:  # type: ignore[misc]
        ratio = duration / limit if limit else float("inf")
        worst = (ratio, duration, limit, step, kind, tool)
        if not self.slow:
            self.slow = [1, worst]
        else:
            self.slow[0] += 1
            if (ratio, duration) > self.slow[1][:2]:
                self.slow[1] = worst
        self._fire("SLOW_STEP", step)

    # -- LLM calls ---------------------------------------------------------------
