"""The thin layer that plugs the translator into LlamaIndex's dispatcher.

The handler classes subclass LlamaIndex's ``BaseSpanHandler`` and
``BaseEventHandler``, so they are built on first use (``handler_classes()``),
never when this module is imported: ``import dunetrace.integrations.llamaindex``
costs nothing and works without LlamaIndex installed.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from dunetrace.log import ErrorGuard, capture_internal_errors, warn_once
from dunetrace.plugins import hookimpl

from .policies import attach
from .translator import ENGINE, OTHER, TOOL, WORKFLOW, Translator

if TYPE_CHECKING:
    from dunetrace import Dunetrace

__all__ = ["handler_classes", "instrument", "uninstrument"]

PLUGIN_NAME = "dunetrace.llamaindex"

_TOOL_METHODS = frozenset({"call", "acall", "__call__"})
_QUERY_METHODS = frozenset({"query", "aquery"})
_CHAT_METHODS = frozenset({"chat", "achat", "stream_chat", "astream_chat"})


# One guard per callback, made once: they hold no per-use state.
_NEW_SPAN = ErrorGuard("llamaindex.new_span")
_EXIT_SPAN = ErrorGuard("llamaindex.prepare_to_exit_span")
_DROP_SPAN = ErrorGuard("llamaindex.prepare_to_drop_span")
_HANDLE = ErrorGuard("llamaindex.handle")
_CLOSE = ErrorGuard("llamaindex.close")

_classes: tuple[type, type] | None = None
_classes_lock = threading.Lock()


def _import_error(exc: ImportError) -> ImportError:
    return ImportError(
        f"dunetrace.integrations.llamaindex needs llama-index-core: pip install 'dunetrace[llamaindex]' ({exc})"
    )


def make_classifier() -> Any:
    """``classify(instance, method)`` for the translator, from LlamaIndex's
    own base classes; cached per (class, method), so a span costs one dict
    lookup."""
    from llama_index.core.base.base_query_engine import BaseQueryEngine
    from llama_index.core.chat_engine.types import BaseChatEngine
    from llama_index.core.tools.types import BaseTool
    from llama_index.core.workflow import Workflow

    cache: dict[tuple[type, str], int] = {}

    def classify(instance: Any, method: str) -> int:
        key = (type(instance), method)
        kind = cache.get(key)
        if kind is None:
            if method in _TOOL_METHODS and isinstance(instance, BaseTool):
                kind = TOOL
            elif method == "run" and isinstance(instance, Workflow):
                kind = WORKFLOW
            elif (method in _QUERY_METHODS and isinstance(instance, BaseQueryEngine)) or (
                method in _CHAT_METHODS and isinstance(instance, BaseChatEngine)
            ):
                kind = ENGINE
            else:
                kind = OTHER
            if len(cache) < 4096:
                cache[key] = kind
        return kind

    return classify


def _keep(handler: Any, translator: Translator) -> None:
    # In the instance __dict__, beside the pydantic fields: read on every span
    # and event, and a pydantic private attribute is served by the model's
    # __getattr__ fallback, which measured ~10 us per read (pydantic 2.12)
    # against ~0.05 us for a plain attribute.
    object.__setattr__(handler, "_translator", translator)


def _build() -> tuple[type, type]:
    try:
        from llama_index.core.instrumentation.event_handlers import BaseEventHandler
        from llama_index.core.instrumentation.span import BaseSpan
        from llama_index.core.instrumentation.span_handlers import BaseSpanHandler
    except ImportError as exc:
        raise _import_error(exc) from exc

    class DunetraceSpanHandler(BaseSpanHandler[BaseSpan]):  # type: ignore[misc,valid-type]
        """Reports LlamaIndex agent and query runs to Dunetrace.

        ``DunetraceSpanHandler(dt, agent_id="rag-agent")``; add it and its
        :class:`DunetraceEventHandler` to a dispatcher (``instrument()`` does
        both on the root dispatcher). It keeps no spans of its own in
        ``open_spans``: its state lives in the translator, keyed by span id.
        """

        def __init__(self, client: Dunetrace, agent_id: str) -> None:
            if not isinstance(agent_id, str) or not agent_id.strip():
                raise ValueError(f"agent_id must be a non-empty string naming the agent; got {agent_id!r}")
            if not hasattr(client, "run") or not hasattr(client, "plugins"):
                raise TypeError(f"DunetraceSpanHandler needs a Dunetrace client; got {client!r}")
            super().__init__()
            _keep(self, Translator(client, agent_id, make_classifier()))

        @classmethod
        def class_name(cls) -> str:
            return "DunetraceSpanHandler"

        @property
        def translator(self) -> Translator:
            return self._translator  # type: ignore[no-any-return]

        def new_span(
            self,
            id_: str,
            bound_args: Any,
            instance: Any | None = None,
            parent_span_id: str | None = None,
            tags: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            # Returns None: LlamaIndex keeps nothing in open_spans for us.
            with _NEW_SPAN:
                translator = self._translator
                translator.span_entered(id_, parent_span_id, instance, bound_args)
                if instance is not None and translator.client._policies.stops:
                    attach(translator, instance)

        def prepare_to_exit_span(
            self, id_: str, bound_args: Any, instance: Any | None = None, result: Any | None = None, **kwargs: Any
        ) -> None:
            with _EXIT_SPAN:
                self._translator.span_exited(id_, result)

        def prepare_to_drop_span(
            self,
            id_: str,
            bound_args: Any,
            instance: Any | None = None,
            err: BaseException | None = None,
            **kwargs: Any,
        ) -> None:
            with _DROP_SPAN:
                self._translator.span_dropped(id_, err)

        def close(self) -> None:
            # Dispatcher.shutdown() (llama-index-instrumentation 0.6) calls this.
            with _CLOSE:
                self._translator.close()

    class DunetraceEventHandler(BaseEventHandler):  # type: ignore[misc,valid-type]
        """The event half: LLM and retrieval events. Built from the span
        handler it pairs with, whose state it shares."""

        def __init__(self, span_handler: DunetraceSpanHandler) -> None:
            if not isinstance(span_handler, DunetraceSpanHandler):
                raise TypeError(
                    f"DunetraceEventHandler(span_handler) takes a DunetraceSpanHandler; got {span_handler!r}"
                )
            super().__init__()
            _keep(self, span_handler._translator)

        @classmethod
        def class_name(cls) -> str:
            return "DunetraceEventHandler"

        def handle(self, event: Any, **kwargs: Any) -> None:
            # Most events (workflow steps, embeddings, synthesis) are not
            # read at all; a class-name lookup that cannot raise skips them
            # before the guard is set up.
            translator = self._translator
            if translator.wants(event):
                with _HANDLE:
                    translator.handle(event)

    DunetraceSpanHandler.__module__ = DunetraceEventHandler.__module__ = "dunetrace.integrations.llamaindex"
    return DunetraceSpanHandler, DunetraceEventHandler


def handler_classes() -> tuple[type, type]:
    """(DunetraceSpanHandler, DunetraceEventHandler), built once."""
    global _classes
    with _classes_lock:
        if _classes is None:
            _classes = _build()
        return _classes


# -- instrument / uninstrument ---------------------------------------------------


class _Installation:
    """What ``instrument()`` added: two handlers on a dispatcher, and this
    object as a plugin on the client, which detaches at ``dt.shutdown()``."""

    def __init__(
        self, client: Dunetrace, agent_id: str, dispatcher: Any, span_handler: Any, event_handler: Any
    ) -> None:
        self.client = client
        self.agent_id = agent_id
        self.dispatcher = dispatcher
        self.span_handler = span_handler
        self.event_handler = event_handler

    @hookimpl
    def dunetrace_shutdown(self, client: Dunetrace) -> None:
        with capture_internal_errors("llamaindex.shutdown"):
            _remove(self)

    def detach(self) -> None:
        # New lists, not in-place removal: a dispatch iterating the old list
        # in another thread is unaffected. Identity, not ==: pydantic
        # compares handlers by their fields.
        d = self.dispatcher
        d.span_handlers = [h for h in d.span_handlers if h is not self.span_handler]
        d.event_handlers = [h for h in d.event_handlers if h is not self.event_handler]
        if self.client.plugins.is_registered(self):
            self.client.plugins.unregister(self)
        self.span_handler.close()


_installed: _Installation | None = None
_install_lock = threading.Lock()


def instrument(dt: Dunetrace, agent_id: str) -> Any:
    """Report every LlamaIndex agent run and query to ``dt`` under ``agent_id``.

    Adds a span handler and an event handler to LlamaIndex's root
    instrumentation dispatcher. Calling it again with the same client and
    agent id changes nothing; with another client or agent id it replaces the
    earlier installation. Returns the span handler. Raises ImportError when
    llama-index-core is not installed.
    """
    global _installed
    span_cls, event_cls = handler_classes()
    try:
        from llama_index.core.instrumentation import get_dispatcher
    except ImportError as exc:  # pragma: no cover - handler_classes() imported it
        raise _import_error(exc) from exc
    with _install_lock:
        current = _installed
        if current is not None and current.client is dt and current.agent_id == agent_id:
            return current.span_handler
        span_handler = span_cls(dt, agent_id)
        event_handler = event_cls(span_handler)
        if current is not None:
            _installed = None
            current.detach()
        dispatcher = get_dispatcher()
        installation = _Installation(dt, agent_id, dispatcher, span_handler, event_handler)
        previous = dt.plugins.get_plugin(PLUGIN_NAME)
        if previous is not None:
            dt.plugins.unregister(previous)
        dt.plugins.register(installation, name=PLUGIN_NAME)
        dispatcher.add_span_handler(span_handler)
        dispatcher.add_event_handler(event_handler)
        dt._policies.framework_limits(
            "LlamaIndex",
            frozenset({"switch_model", "inject_prompt"}),
            "its agents take no per-call model or message from outside; in your own workflow steps read "
            "run.model_override and run.pop_prompt_addition()",
        )
        _installed = installation
        return span_handler


def uninstrument() -> None:
    """Remove exactly the handlers ``instrument()`` added; runs still open
    are finished as ``abandoned``. Safe to call when not instrumented."""
    global _installed
    with _install_lock:
        current, _installed = _installed, None
    if current is not None:
        current.detach()


def _remove(installation: _Installation) -> None:
    global _installed
    with _install_lock:
        if _installed is installation:
            _installed = None
    try:
        installation.detach()
    except Exception as exc:  # the client is going away; do not stop its shutdown
        warn_once("llamaindex-detach", "dunetrace: could not detach from LlamaIndex: %r", exc)
