"""Dunetrace for LangChain and LangGraph.

``pip install 'dunetrace[langchain]'``, then either pass the handler::

    from dunetrace.integrations.langchain import DunetraceCallbackHandler
    handler = DunetraceCallbackHandler(dt, agent_id="my-agent")
    agent.invoke(inputs, config={"callbacks": [handler]})

or attach it to every invoke in the process::

    from dunetrace.integrations import langchain as dt_langchain
    dt_langchain.instrument(dt, agent_id="my-agent")

Importing this module imports no LangChain: the handler class is loaded on
first use.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from dunetrace.log import warn_once
from dunetrace.plugins import hookimpl

if TYPE_CHECKING:
    from dunetrace import Dunetrace

    from .adapter import DunetraceCallbackHandler
    from .embeddings import ReportedEmbeddings, report_embeddings
    from .policies import DunetraceMiddleware

__all__ = [
    "DunetraceCallbackHandler",
    "DunetraceMiddleware",
    "ReportedEmbeddings",
    "instrument",
    "report_embeddings",
    "uninstrument",
]

PLUGIN_NAME = "dunetrace.langchain"


def _load_adapter() -> Any:
    try:
        from . import adapter
    except ImportError as exc:
        if not (exc.name or "").startswith("langchain"):
            raise
        raise ImportError(
            "dunetrace's LangChain integration needs langchain-core: pip install 'dunetrace[langchain]'"
        ) from exc
    return adapter


def __getattr__(name: str) -> Any:
    if name == "DunetraceCallbackHandler":
        return _load_adapter().DunetraceCallbackHandler
    if name == "DunetraceMiddleware":
        _load_adapter()
        try:
            from .policies import DunetraceMiddleware
        except ImportError as exc:
            raise ImportError(
                "DunetraceMiddleware needs langchain 1.x (create_agent's middleware): "
                "pip install 'dunetrace[langchain]'"
            ) from exc
        return DunetraceMiddleware
    if name in ("ReportedEmbeddings", "report_embeddings"):
        _load_adapter()
        from . import embeddings

        return getattr(embeddings, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class _Instrumentation:
    """What ``instrument()`` installed, so ``uninstrument()`` can take exactly
    that away again."""

    def __init__(self, client: Dunetrace, handler: DunetraceCallbackHandler, var: ContextVar[Any]) -> None:
        self.client = client
        self.handler = handler
        self.var = var

    @hookimpl
    def dunetrace_shutdown(self, client: Dunetrace) -> None:
        if client is self.client:
            uninstrument()


_installed: _Instrumentation | None = None
_lock = threading.Lock()


def instrument(dt: Dunetrace, agent_id: str | None = None, *, max_live_runs: int = 1000) -> DunetraceCallbackHandler:
    """Report every LangChain / LangGraph invoke in this process, without
    passing callbacks. Returns the handler in use.

    Idempotent: calling it again with the same client and agent_id returns
    the same handler; with others, it replaces the first. An invoke that is
    also given a ``DunetraceCallbackHandler`` explicitly is reported once, by
    that one. Undone by :func:`uninstrument` or ``dt.shutdown()``.
    """
    global _installed
    module = _load_adapter()
    from langchain_core.tracers import context as lc_context

    with _lock:
        current = _installed
        if current is not None and current.client is dt and current.handler.agent_id == agent_id:
            return current.handler
    if current is not None:
        uninstrument()
    handler = module.DunetraceCallbackHandler(dt, agent_id, max_live_runs=max_live_runs)
    # langchain-core's configure hook: a ContextVar whose value, when not
    # None, is added to every callback manager. Its default holds the
    # handler, so every thread and task sees it; with handle_class given,
    # LangChain skips it where a DunetraceCallbackHandler is already
    # present, so a handler passed explicitly is not doubled.
    var: ContextVar[Any] = ContextVar("dunetrace_langchain_handler", default=handler)
    lc_context.register_configure_hook(var, True, module.DunetraceCallbackHandler, None)
    with _lock:
        _installed = _Instrumentation(dt, handler, var)
        dt.plugins.register(_installed, name=PLUGIN_NAME)
    return handler


def uninstrument() -> None:
    """Undo :func:`instrument`; safe to call when not instrumented."""
    global _installed
    with _lock:
        installed, _installed = _installed, None
    if installed is None:
        return
    # langchain-core 1.x has no public way to unregister a configure hook:
    # remove exactly the entry instrument() appended from its list.
    from langchain_core.tracers import context as lc_context

    hooks = getattr(lc_context, "_configure_hooks", None)
    if isinstance(hooks, list):
        hooks[:] = [entry for entry in hooks if entry[0] is not installed.var]
    else:
        warn_once(
            "langchain-uninstrument",
            "dunetrace: this langchain-core has no configure-hook list; the handler stays attached until exit",
        )
    plugins = installed.client.plugins
    if plugins.get_plugin(PLUGIN_NAME) is installed:
        plugins.unregister(name=PLUGIN_NAME)
