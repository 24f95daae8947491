"""Dunetrace for the OpenAI Agents SDK: ``pip install 'dunetrace[openai-agents]'``.

    from dunetrace.integrations.openai_agents import instrument
    instrument(dt, agent_id="support-bot")

adds a :class:`DunetraceTracingProcessor` beside the SDK's own trace
processors (``instrument(..., replace=True)`` makes it the only one, so
nothing goes to OpenAI's trace backend). Each ``Runner.run`` / ``run_sync``
/ ``run_streamed`` is a run; handoffs and agents run inside tools are child
runs; model calls carry model, tokens and finish reason; tool calls their
arguments' hash and success; a tripped guardrail ends the run with exit
reason ``guardrail_tripped``. ``uninstrument()`` or ``dt.shutdown()`` takes
the processor off again.

Live ``stop`` policies need one more line at the call, because the SDK drops
what trace processors raise: ``Runner.run(agent, question,
hooks=DunetracePolicyHooks())`` (see :mod:`.policies`).

Importing this module does not import the SDK.
"""

from __future__ import annotations

import importlib
import threading
from typing import TYPE_CHECKING, Any

from dunetrace.log import warn_once
from dunetrace.plugins import hookimpl

if TYPE_CHECKING:
    from dunetrace import Dunetrace

    from .adapter import DunetraceTracingProcessor
    from .policies import DunetracePolicyHooks

__all__ = ["DunetracePolicyHooks", "DunetraceTracingProcessor", "instrument", "uninstrument"]

PLUGIN_NAME = "dunetrace.openai_agents"


def _load_adapter(module: str = "adapter") -> Any:
    try:
        loaded = importlib.import_module(f"{__name__}.{module}")
    except ImportError as exc:
        if not (exc.name or "").startswith("agents"):
            raise
        raise ImportError(
            "dunetrace.integrations.openai_agents needs the OpenAI Agents SDK: "
            f"pip install 'dunetrace[openai-agents]' ({exc})"
        ) from exc
    return loaded


def __getattr__(name: str) -> Any:
    if name == "DunetraceTracingProcessor":
        return _load_adapter().DunetraceTracingProcessor
    if name == "DunetracePolicyHooks":
        return _load_adapter("policies").DunetracePolicyHooks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _processors(provider: Any) -> tuple[Any, ...] | None:
    # openai-agents 0.20: the default provider keeps its processors in a
    # tuple on a multi-processor, with no call to read or remove one.
    found = getattr(getattr(provider, "_multi_processor", None), "_processors", None)
    return found if isinstance(found, tuple) else None


class _Installation:
    def __init__(self, client: Dunetrace, processor: Any, replaced: tuple[Any, ...] | None) -> None:
        self.client = client
        self.processor = processor
        #: The SDK's processors that ``replace=True`` took off, to put back.
        self.replaced = replaced

    @hookimpl
    def dunetrace_shutdown(self, client: Dunetrace) -> None:
        if client is self.client:
            uninstrument()

    def detach(self) -> None:
        from agents.tracing import get_trace_provider

        provider = get_trace_provider()
        current = _processors(provider)
        if current is None:
            warn_once("openai-agents-remove", "dunetrace: could not take the tracing processor off; it stops reporting")
            self.processor.translator._max = 0
        else:
            kept = [p for p in current if p is not self.processor]
            provider.set_processors([*(self.replaced or ()), *kept])
        if self.client.plugins.is_registered(self):
            self.client.plugins.unregister(self)
        self.processor.shutdown()


_installed: _Installation | None = None
_lock = threading.Lock()


def instrument(dt: Dunetrace, agent_id: str | None = None, *, replace: bool = False) -> DunetraceTracingProcessor:
    """Report every OpenAI Agents SDK run to ``dt``. Idempotent for the same
    client and agent_id; another replaces the first. ``replace=True`` takes
    the SDK's own processors off (``uninstrument()`` puts them back)."""
    global _installed
    processor_class = _load_adapter().DunetraceTracingProcessor
    from agents.tracing import add_trace_processor, get_trace_provider

    with _lock:
        current = _installed
        if current is not None and current.client is dt and current.processor.agent_id == agent_id:
            return current.processor  # type: ignore[no-any-return]
        replaced = None
        if current is not None:  # taken off whole, the SDK's processors put back
            _installed = None
            current.detach()
        processor = processor_class(dt, agent_id)
        if replace:
            provider = get_trace_provider()
            replaced = _processors(provider) or ()
            provider.set_processors([processor])
        else:
            add_trace_processor(processor)
        installation = _Installation(dt, processor, replaced)
        dt.plugins.register(installation, name=PLUGIN_NAME)
        dt._policies.framework_limits(
            "OpenAI Agents SDK",
            frozenset({"switch_model", "inject_prompt"}),
            "run hooks cannot change the model or the messages of a call; stop works with "
            "Runner.run(..., hooks=DunetracePolicyHooks())",
        )
        _installed = installation
        return processor


def uninstrument() -> None:
    """Take the processor off (and put back what ``replace=True`` took);
    runs still open end as ``abandoned``."""
    global _installed
    with _lock:
        current, _installed = _installed, None
    if current is not None:
        current.detach()
