"""Dunetrace for LlamaIndex: ``pip install 'dunetrace[llamaindex]'``.

    from dunetrace import Dunetrace
    from dunetrace.integrations.llamaindex import instrument

    dt = Dunetrace()
    instrument(dt, agent_id="rag-agent")

Every top-level agent run (``FunctionAgent``, ``ReActAgent``,
``AgentWorkflow``) and query or chat engine call becomes a Dunetrace run with
its LLM calls, tool calls and retrievals. An agent run inside another run (an
agent used as a tool) is a child run. Inside ``with dt.run(...)``, the events
go to that run instead.

``DunetraceSpanHandler`` and ``DunetraceEventHandler`` are the handlers
``instrument()`` adds to the root dispatcher, for adding them yourself::

    span_handler = DunetraceSpanHandler(dt, agent_id="rag-agent")
    dispatcher.add_span_handler(span_handler)
    dispatcher.add_event_handler(DunetraceEventHandler(span_handler))

Importing this module does not import LlamaIndex; the handler classes are
built (and LlamaIndex imported) the first time they are used.

A streamed answer (``streaming=True`` query engines, ``stream_chat``) keeps
its run open until it is read, since LlamaIndex calls the LLM only then. A
human-in-the-loop pause that is saved and cancelled ends its run
``interrupted``; the run resuming it names it in ``resumed_from``.
Cancellations end runs ``cancelled``, ``max_iterations`` ends them
``max_iterations``, and every call still open is answered before a run's
terminal event. The README's LlamaIndex section lists each case.
"""

from __future__ import annotations

from typing import Any

from .adapter import handler_classes, instrument, uninstrument

__all__ = ["DunetraceEventHandler", "DunetraceSpanHandler", "instrument", "uninstrument"]


def __getattr__(name: str) -> Any:
    if name == "DunetraceSpanHandler":
        return handler_classes()[0]
    if name == "DunetraceEventHandler":
        return handler_classes()[1]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
