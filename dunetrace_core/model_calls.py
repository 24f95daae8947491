"""Which context a framework integration is reporting a model call in.

A LangChain chat model or a LlamaIndex LLM often calls the model through an
OpenAI or Anthropic client the user also wrapped with
``dt.wrap_openai()`` / ``dt.wrap_anthropic()``. The framework integration
reports that call already; the client wrapper must then stay silent, or the
call is counted twice. But only for *that* call: a wrapped call made at the
same time in another asyncio task or thread of the same run is a call of its
own and is reported.

So the mark is per context, a contextvar: the framework integration marks
the context its model call runs in (:func:`framework_model_call_started`,
from its start callback, which the framework calls in the model call's own
context) and the client wrapper asks :func:`in_framework_model_call`. Tasks
started inside the model call (and threads given its context) inherit the
mark: they are part of it. Tasks and threads started beside it do not. (CrewAI 1.x calls its event
handlers on a thread pool, away from the model call's context: its
integration cannot mark it.)

The mark is an object that is closed when the call ends, wherever its end is
seen, and that stops counting when its run has ended: a call whose end never
comes (an interrupt, a cancelled task) leaves no context silenced.
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .run import Run

__all__ = [
    "FrameworkModelCall",
    "framework_model_call_ended",
    "framework_model_call_started",
    "in_framework_model_call",
]


class FrameworkModelCall:
    """One model call a framework integration is reporting."""

    __slots__ = ("open", "run", "token")

    def __init__(self, run: Run | None) -> None:
        self.run = run
        self.open = True
        self.token: Token[FrameworkModelCall | None] | None = None


_current: ContextVar[FrameworkModelCall | None] = ContextVar("dunetrace_framework_model_call", default=None)


def framework_model_call_started(run: Run | None = None) -> FrameworkModelCall:
    """Mark the current context as inside a model call the framework
    integration reports (for ``run``, when known). Call it where the
    framework runs the model call's start callback, and hand the result to
    :func:`framework_model_call_ended`."""
    call = FrameworkModelCall(run)
    call.token = _current.set(call)
    return call


def framework_model_call_ended(call: FrameworkModelCall | None) -> None:
    """The call is over. Safe from any context and more than once: the mark
    is closed for every context holding it, and removed from this one when
    this is where it was set."""
    if call is None:
        return
    call.open = False
    token, call.token = call.token, None
    if token is not None and _current.get() is call:
        # try, not contextlib.suppress: three calls less on every model call.
        try:  # noqa: SIM105
            _current.reset(token)
        except ValueError:  # set in another context (a copy of this one)
            pass


def in_framework_model_call() -> bool:
    """True inside a model call a framework integration is reporting."""
    call = _current.get()
    if call is None or not call.open:
        return False
    run = call.run
    return run is None or not run.finished
