"""What a policy is: a name, one condition (``when``) and one action
(``then``), checked when it is made, so a mistake is an error naming the
policy and the field rather than a policy that never triggers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ACTIONS",
    "OPERATORS",
    "TRIGGERS",
    "Action",
    "Condition",
    "Policy",
    "PolicyError",
    "PolicyViolation",
]

#: Trigger -> the kind of threshold it takes.
TRIGGERS: dict[str, str] = {
    "signal": "name",
    "tool_calls": "count",
    "steps": "count",
    "tokens": "count",
    "cost_usd": "amount",
    "elapsed_seconds": "amount",
}
#: A number alone means ``>=``.
OPERATORS = (">=", ">")
ACTIONS = ("stop", "switch_model", "inject_prompt", "log")
_ACTIONS_WITH_VALUE = {"switch_model": "a model name", "inject_prompt": "the message to add"}


class PolicyError(ValueError):
    """A policy that cannot work as written; the message names the policy
    and the field."""


class PolicyViolation(Exception):
    """Raised into the agent, at its next tool or model call, after a
    ``stop`` policy triggered. The one exception Dunetrace ever lets reach
    the agent; the run ends ``run.errored`` with this class as its type."""

    #: Lets this exception through Dunetrace's guards (``ErrorGuard``,
    #: ``on_signal`` listeners), which swallow every other one.
    dunetrace_passthrough = True

    def __init__(self, policy: str, reason: str, run_id: str | None = None) -> None:
        super().__init__(f"dunetrace policy {policy!r} stopped the run: {reason}")
        #: The name of the policy that stopped the run.
        self.policy = policy
        #: What triggered it (``"tool_calls >= 5"``).
        self.reason = reason
        self.run_id = run_id

    def __reduce__(self) -> tuple[Any, ...]:
        # Rebuilt from its fields, so it crosses processes (multiprocessing).
        return (type(self), (self.policy, self.reason, self.run_id))


def _fail(policy: str, field: str, message: str) -> PolicyError:
    return PolicyError(f"policy {policy!r}: {field} {message}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class Condition:
    """``trigger operator threshold``, e.g. ``tool_calls >= 5`` (of one
    ``tool`` when given), or ``signal == TOOL_LOOP``."""

    trigger: str
    threshold: Any
    operator: str = ">="
    tool: str | None = None

    def describe(self) -> str:
        if self.trigger == "signal":
            return f"signal {self.threshold}"
        what = f"tool_calls of {self.tool}" if self.tool else self.trigger
        return f"{what} {self.operator} {self.threshold}"

    def holds(self, observed: float) -> bool:
        return bool(observed > self.threshold if self.operator == ">" else observed >= self.threshold)

    @classmethod
    def parse(cls, policy: str, when: Any) -> Condition:
        if isinstance(when, Condition):
            return when
        if not isinstance(when, Mapping):
            raise _fail(policy, "when", f"must be a mapping such as {{'tool_calls': 5}}; got {when!r}")
        triggers = [key for key in when if key != "tool"]
        unknown = [key for key in triggers if key not in TRIGGERS]
        if unknown:
            raise _fail(policy, f"when.{unknown[0]}", f"is not a trigger; use one of {', '.join(TRIGGERS)}")
        if len(triggers) != 1:
            raise _fail(policy, "when", f"must have exactly one trigger ({', '.join(TRIGGERS)}); got {triggers}")
        trigger = triggers[0]
        field = f"when.{trigger}"
        tool = when.get("tool")
        if "tool" in when:
            if trigger != "tool_calls":
                raise _fail(policy, "when.tool", "only goes with tool_calls")
            if not isinstance(tool, str) or not tool:
                raise _fail(policy, "when.tool", f"must be a tool name (a non-empty string); got {tool!r}")
        value = when[trigger]
        kind = TRIGGERS[trigger]
        if kind == "name":
            if not isinstance(value, str) or not value.strip():
                raise _fail(policy, field, f"must be a signal type such as 'TOOL_LOOP'; got {value!r}")
            return cls(trigger, value.strip())
        operator = ">="
        if isinstance(value, Mapping):
            if len(value) != 1:
                raise _fail(policy, field, f"takes one operator and its threshold, e.g. {{'>=': 5}}; got {value!r}")
            ((operator, value),) = value.items()
            if operator not in OPERATORS:
                raise _fail(policy, field, f"has the unknown operator {operator!r}; use one of {', '.join(OPERATORS)}")
        if kind == "count":
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise _fail(policy, field, f"must be a whole number of at least 1; got {value!r}")
        elif not _is_number(value) or value <= 0:
            raise _fail(policy, field, f"must be a number above 0; got {value!r}")
        return cls(trigger, value, operator, tool)


@dataclass(frozen=True)
class Action:
    """``stop``, ``log``, ``switch_model`` to ``value``, or ``inject_prompt``
    with ``value`` as the message."""

    kind: str
    value: str | None = None

    @classmethod
    def parse(cls, policy: str, then: Any) -> Action:
        if isinstance(then, Action):
            return then
        if isinstance(then, str):
            if then in _ACTIONS_WITH_VALUE:
                raise _fail(policy, "then", f"{then!r} needs {_ACTIONS_WITH_VALUE[then]}: then={{{then!r}: ...}}")
            if then not in ACTIONS:
                raise _fail(policy, "then", f"{then!r} is not an action; use one of {', '.join(ACTIONS)}")
            return cls(then)
        if not isinstance(then, Mapping) or len(then) != 1:
            raise _fail(policy, "then", f"must be an action name or one {{action: value}} pair; got {then!r}")
        ((kind, value),) = then.items()
        if kind not in ACTIONS:
            raise _fail(policy, "then", f"{kind!r} is not an action; use one of {', '.join(ACTIONS)}")
        if kind not in _ACTIONS_WITH_VALUE:
            if value not in (None, True, {}):
                raise _fail(policy, f"then.{kind}", f"takes no value; got {value!r}")
            return cls(kind)
        if not isinstance(value, str) or not value.strip():
            raise _fail(
                policy, f"then.{kind}", f"must be {_ACTIONS_WITH_VALUE[kind]} (a non-empty string); got {value!r}"
            )
        return cls(kind, value)


@dataclass(frozen=True)
class Policy:
    """When ``when`` holds for a run, do ``then`` to it, once per run."""

    name: str
    when: Condition
    then: Action

    @classmethod
    def make(cls, name: Any, when: Any, then: Any) -> Policy:
        if not isinstance(name, str) or not name.strip():
            raise PolicyError(f"a policy needs a name (a non-empty string); got {name!r}")
        return cls(name, Condition.parse(name, when), Action.parse(name, then))

    @classmethod
    def from_mapping(cls, item: Any, where: str = "policies") -> Policy:
        if isinstance(item, Policy):
            return item
        if not isinstance(item, Mapping):
            raise PolicyError(f"{where}: each policy is a mapping with name, when and then; got {item!r}")
        name = item.get("name")
        extra = sorted(set(item) - {"name", "when", "then"})
        label = name if isinstance(name, str) and name else where
        if extra:
            raise PolicyError(f"policy {label!r}: {extra[0]} is not a policy field; use name, when and then")
        for key in ("when", "then"):
            if key not in item:
                raise PolicyError(f"policy {label!r}: {key} is missing")
        return cls.make(name, item["when"], item["then"])
