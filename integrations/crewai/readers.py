"""Reading CrewAI event fields by duck typing, and the per-run state the
assembler keeps. Imports no framework."""

from __future__ import annotations

import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dunetrace import Run

__all__ = [
    "CrewState",
    "RunState",
    "agent_suffix",
    "elapsed_ms",
    "event_time",
    "reported_error",
    "template",
    "token_count",
    "tool_names",
    "version_text",
]

_SLUG = re.compile(r"[^a-z0-9]+")


def agent_suffix(role: Any) -> str:
    """A CrewAI agent role as an ``agent_id`` suffix: ``"Senior Researcher"``
    -> ``"senior-researcher"``. Roles are names, but are cut to 48 chars."""
    text = _SLUG.sub("-", str(role or "").lower()).strip("-")
    return text[:48].strip("-") or "agent"


def _seconds(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def event_time(event: Any) -> float | None:
    """When CrewAI says the event happened (its ``timestamp``), in epoch seconds."""
    return _seconds(getattr(event, "timestamp", None))


def elapsed_ms(start: Any, end: Any) -> float | None:
    a, b = _seconds(start), _seconds(end)
    if a is None or b is None:
        return None
    return max(0.0, (b - a) * 1000.0)


_error_classes: dict[str, type[Exception]] = {}


def reported_error(message: Any, type_name: str | None) -> Exception:
    """CrewAI events carry an error as a string (and sometimes its class): an
    exception whose class name is what ``run.errored.error_type`` reports.
    The message is only ever hashed."""
    name = type_name if isinstance(type_name, str) and type_name.isidentifier() else "CrewAIError"
    cls = _error_classes.get(name)
    if cls is None:
        cls = _error_classes.setdefault(name, type(name, (Exception,), {}))
    return cls("" if message is None else str(message))


def template(agent: Any, key: str) -> str:
    """An agent's role/goal/backstory as written, before CrewAI 1.15
    interpolated the kickoff inputs into it (``_original_<key>``): so the
    inputs never reach an ``agent_id``, and the version does not change with
    them."""
    value = getattr(agent, f"_original_{key}", None)
    if not isinstance(value, str):
        value = getattr(agent, key, None)
    return value if isinstance(value, str) else ""


def version_text(agents: Any) -> str:
    return "\n".join("|".join(template(agent, key) for key in ("role", "goal", "backstory")) for agent in agents or ())


def tool_names(tools: Any) -> list[str]:
    names = []
    for tool in tools or ():
        name = getattr(tool, "name", None)
        if isinstance(name, str) and name:
            names.append(name)
    return sorted(set(names))


def token_count(usage: Any, *keys: str) -> int | None:
    if not isinstance(usage, dict):
        return None
    for key in keys:
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


class RunState:
    """One Dunetrace run driven from CrewAI events."""

    __slots__ = ("children", "crew", "done", "llm_calls", "run", "tools")

    def __init__(self, run: Run, crew: CrewState) -> None:
        self.run = run
        self.crew = crew
        #: call_id -> (step, start timestamp)
        self.llm_calls: dict[str, tuple[int, Any]] = {}
        #: tool started event_id -> (step, tool name, args, start timestamp)
        self.tools: dict[str, tuple[int, str, Any, Any]] = {}
        self.children: list[RunState] = []
        self.done = False


class CrewState:
    """Everything of one top-level kickoff, dropped together when it ends."""

    __slots__ = ("error_type", "event_ids", "last_sequence", "root")

    def __init__(self) -> None:
        self.root: RunState | None = None
        #: every scope id placed in this crew's tree (evicted with the crew)
        self.event_ids: set[str] = set()
        self.last_sequence = 0
        self.error_type: str | None = None
