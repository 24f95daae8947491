"""The per-run and per-span state of the span translator: what a run's
``run.started`` will carry until its first step, the clock that stamps its
events with span times, and the helpers that turn span facts into what the
run API takes."""

from __future__ import annotations

import json
import threading
from collections.abc import Hashable, Mapping
from typing import Any

from dunetrace.run import Run

from . import conventions as c

__all__ = ["OpenSpan", "RunState", "Stamp", "as_exception", "parsed", "seconds"]


class Stamp:
    """A run's clock: the time of the span being reported, not of now."""

    __slots__ = ("t",)

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


class RunState:
    """A run as its agent span sees it: what run.started will carry, until
    the first step starts it."""

    __slots__ = (
        "agent_id",
        "exit_reason",
        "injection_seen",
        "lock",
        "model",
        "owned",
        "parent",
        "prompt_seen",
        "run",
        "spans",
        "stamp",
        "system_prompt",
        "tools",
        "user_input",
    )

    def __init__(self, agent_id: str, parent: RunState | None, start: float, run: Run | None = None) -> None:
        self.run = run
        self.agent_id = agent_id
        self.parent = parent
        self.user_input: Any = None
        self.system_prompt: str | None = None
        self.model: str | None = None
        self.tools: list[str] | None = None
        self.stamp = Stamp(start)
        # Re-entrant: a listener of a signal fired here may end a span.
        self.lock = threading.RLock()
        #: False for a ``dt.run(...)`` of the user's that spans joined: we
        #: neither stamp nor finish it.
        self.owned = run is None
        #: Ids of this run's spans still open (to forget them when it ends).
        self.spans: set[Hashable] = set()
        self.injection_seen = False
        #: The last model prompt scanned: prompts repeat the history before
        #: them, so only what follows it is scanned again. Kept in memory
        #: until the run ends, never sent.
        self.prompt_seen: str | None = None
        #: Set by an adapter when the run stops for a reason of its own (a
        #: guardrail tripped): the run completes with it, even if its span
        #: ends in error.
        self.exit_reason: str | None = None

    def fill(self, attributes: Mapping[str, Any], user_input: Any = None, system_prompt: str | None = None) -> None:
        if self.run is not None:
            return
        if self.user_input is None and user_input is not None:
            self.user_input = user_input
        if self.system_prompt is None and system_prompt is not None:
            self.system_prompt = system_prompt
        if self.model is None:
            self.model = c.name_of(attributes, c.MODEL)
        if self.tools is None:
            self.tools = c.tool_names(attributes)


class OpenSpan:
    """One open span of a run: its kind, and its step once called."""

    __slots__ = ("kind", "root", "state", "step")

    def __init__(self, state: RunState, kind: int, root: bool = False) -> None:
        self.state = state
        self.kind = kind
        self.step: int | None = None
        #: The span that made the run (an agent span, or a lone model/tool span).
        self.root = root


_error_classes: dict[str, type[Exception]] = {}


def as_exception(kind: str, message: str) -> Exception:
    """An exception carrying the span's error class name and message, for
    ``run.errored`` (which sends the class name and a hash of both)."""
    name = kind.rsplit(".", 1)[-1][:100] if kind else "Error"
    if not name.isidentifier():
        name = "Error"
    cls = _error_classes.get(name)
    if cls is None:
        cls = type(name, (Exception,), {"__module__": "builtins"})
        if len(_error_classes) < 512:
            _error_classes[name] = cls
    return cls(message)


def seconds(ns: Any) -> float | None:
    return ns / 1e9 if isinstance(ns, int) and not isinstance(ns, bool) and ns > 0 else None


def parsed(text: str | None) -> Any:
    """An input recorded as a JSON object (smolagents' ``{"task": ...}``) is
    read as one, so injection evidence names its field."""
    if text is None:
        return None
    stripped = text.strip()
    if stripped[:1] == "{" and stripped[-1:] == "}":
        try:
            value = json.loads(stripped)
        except ValueError:
            return text
        if isinstance(value, dict):
            return value
    return text
