"""``stop`` policies in LlamaIndex agents, workflows and query engines.

LlamaIndex's instrumentation dispatcher swallows whatever its span and event
handlers raise (llama-index-instrumentation 0.6), so the exception cannot
come from there. Its older callback manager does not: every LLM chat or
completion call runs ``callback_manager.on_event_start(CBEventType.LLM)``
outside any ``try`` (``llama_index.core.llms.callbacks``), right after the
``LLMChatStartEvent`` the translator reports. So the span handler, when a
span of an LLM object opens while the client has a stop policy, adds
:class:`PolicyCallback` to that LLM's callback manager (once per LLM), and
the callback raises ``PolicyViolation`` when the run of the active span was
stopped. The agent's workflow step fails with it, and so does the run.

Tools cannot be blocked this way (an agent calls them with no callback):
after a stop, the next model call is where the agent gets the exception.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dunetrace.log import ErrorGuard

if TYPE_CHECKING:
    from .translator import Translator

__all__ = ["attach", "policy_callback_class"]

_G_ATTACH = ErrorGuard("llamaindex.policy_attach")
_G_START = ErrorGuard("llamaindex.policy_callback")

_callback_class: type | None = None


def policy_callback_class() -> type:
    global _callback_class
    if _callback_class is None:
        from llama_index.core.callbacks import CBEventType
        from llama_index.core.callbacks.base_handler import BaseCallbackHandler
        from llama_index.core.instrumentation.span import active_span_id

        llm_event = CBEventType.LLM

        class PolicyCallback(BaseCallbackHandler):  # type: ignore[misc]
            """Raises PolicyViolation at the start of a stopped run's LLM call."""

            def __init__(self, translator: Translator) -> None:
                super().__init__(event_starts_to_ignore=[], event_ends_to_ignore=[])
                self.translator = translator

            def on_event_start(
                self, event_type: Any, payload: Any = None, event_id: str = "", parent_id: str = "", **kwargs: Any
            ) -> str:
                if event_type is llm_event:
                    run = None
                    with _G_START:
                        run = self.translator.run_of_span(active_span_id.get())
                    if run is not None:
                        run.raise_if_stopped()
                return event_id

            def on_event_end(self, event_type: Any, payload: Any = None, event_id: str = "", **kwargs: Any) -> None:
                return None

            def start_trace(self, trace_id: str | None = None) -> None:
                return None

            def end_trace(self, trace_id: str | None = None, trace_map: Any = None) -> None:
                return None

        _callback_class = PolicyCallback
    return _callback_class


def attach(translator: Translator, instance: Any) -> None:
    """Add the policy callback to ``instance``'s callback manager when it is
    an LLM, once; called for each new span while a stop policy exists."""
    with _G_ATTACH:
        from llama_index.core.base.llms.base import BaseLLM
        from llama_index.core.callbacks import CallbackManager

        if not isinstance(instance, BaseLLM):
            return
        manager = getattr(instance, "callback_manager", None)
        if not isinstance(manager, CallbackManager):
            manager = CallbackManager([])
            instance.callback_manager = manager
        cls = policy_callback_class()
        for handler in manager.handlers:
            if isinstance(handler, cls) and handler.translator is translator:
                return
        manager.add_handler(cls(translator))
