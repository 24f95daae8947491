"""The policy engine: a watcher (see :mod:`dunetrace.live`) that keeps a
few counters per run, checks each policy at every event of the run, and
applies the action of one that holds, once per run.

Actions are applied to the run, never by raising here (this code runs
inside the agent's callbacks, where an exception would be lost or would
break the framework): ``stop`` leaves a :class:`PolicyViolation` that the
run's next ``tool_called`` / ``llm_called`` raises, which every integration
calls at the framework's next tool or model call; ``switch_model`` sets
``run.model_override``; ``inject_prompt`` queues a message for
``run.pop_prompt_addition()``. Each trigger is also a live
``POLICY_TRIGGERED`` signal, shipped and handed to ``on_signal`` listeners.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..live import Signal
from ..log import warn_once
from ._cost import Prices
from ._model import Policy, PolicyError, PolicyViolation

if TYPE_CHECKING:
    from ..run import Run

__all__ = ["POLICY_TRIGGERED", "PolicyEngine"]

POLICY_TRIGGERED = "POLICY_TRIGGERED"
_SEVERITY = {"stop": "HIGH", "switch_model": "MEDIUM", "inject_prompt": "MEDIUM", "log": "LOW"}
_monotonic = time.monotonic


class _RunState:
    """What the conditions read, for one run: counters only."""

    __slots__ = (
        "checking",
        "cost",
        "fired",
        "model",
        "per_tool",
        "prompt_tokens",
        "signals",
        "started",
        "tokens",
        "tool_calls",
    )

    def __init__(self) -> None:
        self.started = _monotonic()
        self.tool_calls = 0
        self.per_tool: dict[str, int] = {}
        self.tokens = 0
        self.cost = 0.0
        self.prompt_tokens: int | None = None  # of the call in flight, from llm.called
        self.model: str | None = None
        self.signals: set[str] = set()
        self.fired: set[str] = set()
        self.checking = False


class PolicyEngine:
    """The policies of one client; fed every event of its runs."""

    def __init__(self) -> None:
        self.policies: tuple[Policy, ...] = ()
        #: Whether any policy stops runs (integrations prepare for it only then).
        self.stops = False
        self._prices: Prices | None = None
        self._lock = threading.Lock()
        #: framework -> (actions it cannot apply, what to do instead)
        self._limits: dict[str, tuple[frozenset[str], str]] = {}
        #: Called with each policy added (integrations that prepare only
        #: once a policy needs them).
        self._on_add: tuple[Callable[[Policy], None], ...] = ()

    # -- configuration ----------------------------------------------------------

    def add(self, policy: Policy) -> None:
        if any(existing.name == policy.name for existing in self.policies):
            raise PolicyError(f"policy {policy.name!r}: name already used; each policy needs its own name")
        if policy.when.trigger == "cost_usd" and self._prices is None:
            self._prices = Prices()
        self.policies = (*self.policies, policy)
        self.stops = self.stops or policy.then.kind == "stop"
        for framework in self._limits:
            self._warn_limit(framework, policy)
        for callback in self._on_add:
            callback(policy)

    def when_added(self, callback: Callable[[Policy], None]) -> None:
        """Call ``callback(policy)`` for each policy added from now on."""
        self._on_add = (*self._on_add, callback)

    def framework_limits(self, framework: str, actions: frozenset[str], instead: str) -> None:
        """An integration says which actions it cannot apply; a policy with
        one of them warns once (now, or when it is added)."""
        self._limits[framework] = (actions, instead)
        for policy in self.policies:
            self._warn_limit(framework, policy)

    def _warn_limit(self, framework: str, policy: Policy) -> None:
        actions, instead = self._limits[framework]
        if policy.then.kind in actions:
            warn_once(
                f"policy-limit:{framework}:{policy.then.kind}",
                "dunetrace: %s cannot apply %s (policy %r): it triggers and is reported there, but changes nothing; %s",
                framework,
                policy.then.kind,
                policy.name,
                instead,
            )

    # -- the watcher -------------------------------------------------------------

    def observe(self, run: Run, event_type: str, step: int, payload: dict[str, Any]) -> None:
        state = run._policy
        if state is None:
            state = run._policy = _RunState()
        if event_type == "tool.called":
            state.tool_calls += 1
            name = payload.get("tool_name")
            state.per_tool[name] = state.per_tool.get(name, 0) + 1
        elif event_type == "llm.called":
            state.model = payload.get("model") or run.model
            state.prompt_tokens = payload.get("prompt_tokens")
        elif event_type == "llm.responded":
            prompt = payload.get("prompt_tokens", state.prompt_tokens) or 0
            completion = payload.get("completion_tokens") or 0
            state.tokens += prompt + completion
            if self._prices is not None and (prompt or completion):
                state.cost += self._prices.cost(state.model or run.model, prompt, completion)
        elif event_type == "external.signal":
            name = payload.get("signal_name")
            if isinstance(name, str):
                state.signals.add(name)
        elif event_type in ("run.completed", "run.errored"):
            return
        if state.checking:
            # A trigger's own POLICY_TRIGGERED event, inside the loop below:
            # counted, and checked by that loop, so signals ship in order.
            return
        state.checking = True
        try:
            again = True
            while again:
                again = False
                for policy in self.policies:
                    if policy.name not in state.fired:
                        observed = self._observed(policy, run, state)
                        if observed is not None:
                            self._trigger(policy, observed, run, state, step)
                            again = True
        finally:
            state.checking = False

    @staticmethod
    def _observed(policy: Policy, run: Run, state: _RunState) -> float | None:
        """The measured value when the policy's condition holds, else None."""
        when = policy.when
        trigger = when.trigger
        if trigger == "signal":
            return 1 if when.threshold in state.signals else None
        if trigger == "tool_calls":
            value: float = state.per_tool.get(when.tool, 0) if when.tool else state.tool_calls
        elif trigger == "steps":
            value = run.step_index
        elif trigger == "tokens":
            value = state.tokens
        elif trigger == "cost_usd":
            value = state.cost
        else:
            value = round(_monotonic() - state.started, 3)
        return value if when.holds(value) else None

    def _trigger(self, policy: Policy, observed: float, run: Run, state: _RunState, step: int) -> None:
        with self._lock:  # one run may be fed from several threads
            if policy.name in state.fired:
                return
            state.fired.add(policy.name)
        action = policy.then
        reason = policy.when.describe()
        if action.kind == "stop":
            if run._violation is None:
                run._violation = PolicyViolation(policy.name, reason, run.run_id)
        elif action.kind == "switch_model":
            run.model_override = action.value
        elif action.kind == "inject_prompt":
            run.add_prompt_addition(action.value or "")
        evidence: dict[str, Any] = {
            "policy": policy.name,
            "action": action.kind,
            "trigger": policy.when.trigger,
            "condition": reason,
        }
        if policy.when.trigger != "signal":
            evidence["observed"] = round(observed, 6) if isinstance(observed, float) else observed
        if action.kind == "switch_model":
            evidence["model"] = action.value  # a model name; an injected prompt's text is never sent
        signal = Signal(POLICY_TRIGGERED, _SEVERITY[action.kind], 1.0, step, evidence, run=run)
        run.fire(signal, key=f"{POLICY_TRIGGERED}:{policy.name}")
