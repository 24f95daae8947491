"""What the translator holds per run, per span and per call in flight.
Imports no LlamaIndex."""

from __future__ import annotations

import time
from contextvars import Token
from typing import TYPE_CHECKING

from dunetrace.model_calls import FrameworkModelCall

if TYPE_CHECKING:
    from dunetrace import Run

__all__ = ["CallState", "RunState", "SpanState", "clock"]

clock = time.perf_counter


class RunState:
    """A Dunetrace run as seen from one top-level span."""

    __slots__ = (
        "cancelled",
        "cut",
        "late_stream",
        "open_llm",
        "own",
        "pending",
        "root",
        "run",
        "spans",
        "stopped",
        "token",
        "waiting",
        "workflow",
    )

    def __init__(self, run: Run, own: bool, root: str) -> None:
        self.run = run
        self.own = own  # we started it, so we finish it
        self.root = root
        self.spans: set[str] = set()
        self.open_llm = 0
        self.pending = False  # the root span exited; a stream is still open
        self.late_stream = False  # the root returned a stream not started yet
        self.cancelled = False  # handler.cancel_run() reached the root span
        self.cut = False  # a step or call was cancelled while running
        self.stopped = False  # the caller closed a relayed stream early
        self.token: Token[Run | None] | None = None  # made the run current
        # Tool calls a human-in-the-loop wait paused: name -> (step, start);
        # the tool runs again from the start once the answer arrives.
        self.waiting: dict[str, list[tuple[int, float]]] = {}
        self.workflow = ""  # the workflow class, to link a resumed run


class SpanState:
    __slots__ = ("called_tool", "parent", "started", "state", "step", "tool")

    def __init__(self, parent: str | None, state: RunState) -> None:
        self.parent = parent
        self.state = state
        self.tool: str | None = None
        self.step = 0
        self.started = 0.0
        self.called_tool = False  # a tool span started below this one


class CallState:
    """An LLM call or a retrieval in flight."""

    __slots__ = ("model_call", "name", "started", "state", "step")

    def __init__(self, state: RunState, step: int, name: str = "") -> None:
        self.state = state
        #: An LLM call's mark: wrapped OpenAI/Anthropic clients stay silent
        #: in its context (dunetrace.model_calls).
        self.model_call: FrameworkModelCall | None = None
        self.step = step
        self.started = clock()
        self.name = name
