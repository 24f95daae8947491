"""Human in the loop: which run a LangGraph ``Command(resume=...)`` resumes.

LangGraph pauses a graph with ``interrupt()`` (in a node, in a tool, or in
``HumanInTheLoopMiddleware``) and continues it when the caller invokes the
same graph again with ``Command(resume=value)`` and the same ``thread_id``.
Both invokes are runs of their own. The paused one ends ``interrupted``;
the table here remembers it, per client, agent and thread, so the resuming
run can name it (``run.started.payload.resumed_from``) and carry the same
agent configuration, which its first events (a tool call, before any model
call) could not tell. No framework import: a ``Command`` is read by
attribute.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from dunetrace import Dunetrace, Run

__all__ = ["Paused", "Resumes", "resume_value", "resumes_of", "thread_id_of"]

#: Paused threads remembered per client; the oldest is forgotten past this.
MAX_PAUSED = 1000


class Paused(NamedTuple):
    """An interrupted run, as the run that resumes it needs it."""

    run_id: str
    agent_version: str
    model: str | None
    tools: tuple[str, ...]
    known: bool  # the run had learned its configuration (a model call, or a resume of one that had)


class Resumes:
    """(agent, thread_id) -> the last run interrupted on that thread.
    Bounded and thread-safe."""

    def __init__(self, limit: int = MAX_PAUSED) -> None:
        self.limit = limit
        self._paused: OrderedDict[tuple[str, str], Paused] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._paused)

    def interrupted(self, agent: str, thread_id: str, run: Run, known: bool) -> None:
        paused = Paused(run.run_id, run.agent_version, run.model, tuple(run.tools), known)
        with self._lock:
            self._paused.pop((agent, thread_id), None)
            self._paused[(agent, thread_id)] = paused
            while len(self._paused) > self.limit:
                self._paused.popitem(last=False)

    def paused(self, agent: str, thread_id: str) -> Paused | None:
        # Kept, not taken: a resume that fails leaves the thread paused, and
        # the caller may resume it again.
        with self._lock:
            return self._paused.get((agent, thread_id))

    def completed(self, agent: str, thread_id: str) -> None:
        """The thread ran to its end: nothing on it is paused any more."""
        with self._lock:
            self._paused.pop((agent, thread_id), None)


# Per client, not per handler: a handler made anew for each invoke (a common
# way to pass callbacks) still links the resume to the run it resumes.
_tables: weakref.WeakKeyDictionary[Dunetrace, Resumes] = weakref.WeakKeyDictionary()
_tables_lock = threading.Lock()


def resumes_of(client: Dunetrace) -> Resumes:
    table = _tables.get(client)
    if table is None:
        with _tables_lock:
            table = _tables.setdefault(client, Resumes())
    return table


def resume_value(inputs: Any) -> tuple[Any] | None:
    """``(value,)`` when ``inputs`` is LangGraph's ``Command(resume=value)``,
    else None. Found by class name and attribute (langgraph 1.x), so this
    module imports no langgraph."""
    if type(inputs).__name__ != "Command":
        return None
    value = getattr(inputs, "resume", None)
    return None if value is None else (value,)


def thread_id_of(metadata: Any) -> str | None:
    """The ``thread_id`` LangGraph copies from ``config["configurable"]``
    into every callback's metadata (langgraph 1.x)."""
    if isinstance(metadata, dict):
        thread = metadata.get("thread_id")
        if isinstance(thread, (str, int)) and not isinstance(thread, bool):
            return str(thread)
    return None
