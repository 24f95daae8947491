"""What LangChain knows but its callbacks do not pass: read from its config
context and from the frames of its own functions that are calling us.

Each reader is tied to the langchain-core / langchain version named in its
comment, returns None (or False) when the framework no longer looks that
way, and is called only where the callbacks leave a question open: a root
call's start, a tool output that is not a ``ToolMessage``, the first model
call of a run.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any
from uuid import UUID

from langchain_core.runnables.config import var_child_runnable_config
from langchain_core.tools import BaseTool

__all__ = ["agent_model_request", "context_parent", "tool_error_was_handled"]

# The frames between a handler's callback and the framework function that
# fired it: LangChain's callback manager and its event dispatch (sync or
# async) sit in between.
_TOOL_DEPTH = 10
# From a model callback up to create_agent's model execution: the chat
# model's invoke / generate layers, the model binding, the middleware chain.
_AGENT_DEPTH = 60

_TOOL_RUN_CODES = frozenset({BaseTool.run.__code__, BaseTool.arun.__code__})
_AGENT_EXECUTORS = frozenset({"_execute_model_sync", "_execute_model_async"})


def context_parent() -> UUID | None:
    """The run id LangChain's config context names as the parent of a call
    that arrived without one.

    langchain-core 1.8 ``RunnableWithFallbacks.invoke`` / ``ainvoke`` set the
    child config (whose callbacks name the fallbacks run as parent) in the
    context but pass the caller's config to each attempt, so at the top
    level every attempt starts as a root with ``parent_run_id=None``. The
    context still says whose child it is."""
    config = var_child_runnable_config.get()
    if not config:
        return None
    parent = getattr(config.get("callbacks"), "parent_run_id", None)
    return parent if isinstance(parent, UUID) else None


def _caller(depth: int) -> FrameType | None:
    try:
        return sys._getframe(depth)
    except ValueError:
        return None


def tool_error_was_handled() -> bool:
    """Whether the ``BaseTool.run`` / ``arun`` calling ``on_tool_end`` turned
    an exception into its output (``handle_tool_error``,
    ``handle_validation_error``).

    langchain-core 1.8 reports such an output as ``ToolMessage(status="error")``
    only when the call has a ``tool_call_id`` (an agent's call); called with
    plain arguments, the callback gets the error text alone, and only the
    local ``status`` of the tool's ``run`` says it is an error."""
    frame = _caller(1)
    for _ in range(_TOOL_DEPTH):
        if frame is None:
            return False
        if frame.f_code in _TOOL_RUN_CODES:
            return frame.f_locals.get("status") == "error"
        frame = frame.f_back
    return False


def agent_model_request() -> Any:
    """The ``ModelRequest`` a ``langchain.agents.create_agent`` agent is
    executing, seen from inside its model call; None outside one.

    langchain 1.5 binds a ``ToolStrategy`` response format's output tools
    to the model next to the agent's own tools, and nothing in the model's
    callbacks tells them apart: the request (``tools`` the agent's tools,
    ``response_format``) does, in the frame of the agent's model execution
    (the innermost, after every middleware's ``wrap_model_call``)."""
    frame = _caller(1)
    for _ in range(_AGENT_DEPTH):
        if frame is None:
            return None
        if frame.f_code.co_name in _AGENT_EXECUTORS and "langchain" in frame.f_code.co_filename:
            request = frame.f_locals.get("request")
            return request if type(request).__name__ == "ModelRequest" else None
        frame = frame.f_back
    return None
