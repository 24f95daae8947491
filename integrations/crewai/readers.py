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
    "count_in_messages",
    "event_time",
    "has_guardrail",
    "last_message_has",
    "reported_error",
    "stable_args",
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


def version_text(agents: Any, *, with_setup: bool = False) -> str:
    """The agents' definitions as one text, hashed into ``agent_version``:
    role, goal and backstory (their prompt); ``with_setup`` adds each one's
    model and tool names, so a crew's version changes when any agent's
    model or tools change (an agent's own run has them as fields)."""
    lines = []
    for agent in agents or ():
        parts = [template(agent, key) for key in ("role", "goal", "backstory")]
        if with_setup:
            model = getattr(getattr(agent, "llm", None), "model", None)
            parts.append(model if isinstance(model, str) else "")
            parts.append(",".join(tool_names(getattr(agent, "tools", None))))
        lines.append("|".join(parts))
    return "\n".join(lines)


def _framework_object(value: Any) -> str | None:
    """A stable name for a CrewAI agent, task, crew, LLM or tool found among
    tool arguments (duck typed; None for anything else)."""
    if isinstance(value, (str, int, float, bool, dict, list, tuple)) or value is None:
        return None
    if hasattr(value, "role") and hasattr(value, "goal") and hasattr(value, "backstory"):
        return f"<crewai agent {template(value, 'role')}>"
    if hasattr(value, "expected_output") and hasattr(value, "description"):
        name = getattr(value, "name", None)
        return f"<crewai task {name if isinstance(name, str) else ''}>"
    if hasattr(value, "agents") and hasattr(value, "tasks"):
        name = getattr(value, "name", None)
        return f"<crewai crew {name if isinstance(name, str) else ''}>"
    if hasattr(value, "model") and callable(getattr(value, "call", None)):
        model = getattr(value, "model", None)
        return f"<crewai llm {model if isinstance(model, str) else ''}>"
    if callable(getattr(value, "_run", None)) and isinstance(getattr(value, "name", None), str):
        return f"<crewai tool {value.name}>"
    return None


def stable_args(args: Any, depth: int = 0) -> Any:
    """Tool arguments with CrewAI framework objects (an agent reference a
    hook or a tool added, its task, crew, LLM or a tool) replaced by a name
    that does not change while the agent works: such objects dump their
    running state (results so far, counters, ids), which would make two
    identical calls hash differently and hide a loop. Other values are
    left as they are."""
    if depth > 8:
        return args
    if isinstance(args, dict):
        if not any(_needs_rewrite(v) for v in args.values()):
            return args
        return {k: stable_args(v, depth + 1) for k, v in args.items()}
    if isinstance(args, (list, tuple)):
        if not any(_needs_rewrite(v) for v in args):
            return args
        return [stable_args(v, depth + 1) for v in args]
    name = _framework_object(args)
    return args if name is None else name


def _needs_rewrite(value: Any) -> bool:
    if isinstance(value, (str, int, float, bool)) or value is None:
        return False
    if isinstance(value, (dict, list, tuple)):
        return True  # looked into by stable_args
    return _framework_object(value) is not None


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


def has_guardrail(task: Any) -> bool:
    """Whether CrewAI will check this task's answer with a guardrail."""
    return any(getattr(task, key, None) for key in ("_guardrail", "_guardrails", "guardrail", "guardrails"))


def count_in_messages(messages: Any, text: str) -> int:
    """How many of an LLM call's messages contain ``text``."""
    if isinstance(messages, str):
        return messages.count(text)
    count = 0
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, dict) else getattr(message, "content", None)
        if isinstance(content, str) and text in content:
            count += 1
    return count


def last_message_has(messages: Any, text: str) -> bool:
    """Whether the last message of an LLM call's ``messages`` (a string or
    a list of role/content dicts) contains ``text``."""
    if isinstance(messages, str):
        return text in messages
    if isinstance(messages, list) and messages:
        last = messages[-1]
        content = last.get("content") if isinstance(last, dict) else getattr(last, "content", None)
        return isinstance(content, str) and text in content
    return False


class RunState:
    """One Dunetrace run driven from CrewAI events."""

    __slots__ = (
        "awaiting_guardrail",
        "children",
        "crew",
        "done",
        "failed_tools",
        "forced_answer",
        "last_tool",
        "llm_calls",
        "refusals_seen",
        "run",
        "tools",
    )

    def __init__(self, run: Run, crew: CrewState) -> None:
        self.run = run
        self.crew = crew
        #: call_id -> (step, start timestamp)
        self.llm_calls: dict[str, tuple[int, Any]] = {}
        #: tool started event_id -> (step, tool name, args, start timestamp)
        self.tools: dict[str, tuple[int, str, Any, Any]] = {}
        self.children: list[RunState] = []
        self.done = False
        #: the agent's answer waits for its task's guardrail (task id), or None
        self.awaiting_guardrail: str | None = None
        #: CrewAI asked for a final answer past ``max_iter``
        self.forced_answer = False
        #: tool names answered as failed since the last LLM call (CrewAI
        #: reports one invented tool name several times)
        self.failed_tools: set[str] = set()
        #: (name, args) of the last tool call CrewAI ran
        self.last_tool: tuple[str, Any] | None = None
        #: CrewAI's refusals of a repeated tool call seen in the conversation
        self.refusals_seen = 0


class CrewState:
    """Everything of one top-level kickoff, dropped together when it ends."""

    __slots__ = ("cancelled", "error_type", "event_ids", "guardrail_rejected", "key", "last_sequence", "root")

    def __init__(self) -> None:
        self.root: RunState | None = None
        #: the kickoff event id it is kept under in the Translator's table
        self.key: str | None = None
        #: every scope id placed in this crew's tree (evicted with the crew)
        self.event_ids: set[str] = set()
        self.last_sequence = 0
        self.error_type: str | None = None
        #: the last task guardrail verdict was a rejection
        self.guardrail_rejected = False
        #: the kickoff was interrupted (KeyboardInterrupt, task cancel)
        self.cancelled = False
