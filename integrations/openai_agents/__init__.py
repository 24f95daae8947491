"""Dunetrace for the OpenAI Agents SDK: ``pip install 'dunetrace[openai-agents]'``.

    from dunetrace.integrations.openai_agents import instrument
    instrument(dt, agent_id="support-bot")

adds a :class:`DunetraceTracingProcessor` beside the SDK's own trace
processors (``instrument(..., replace=True)`` makes it the only one, so
nothing goes to OpenAI's trace backend). Each ``Runner.run`` / ``run_sync``
/ ``run_streamed`` is a run; handoffs and agents run inside tools are child
runs; model calls carry model, tokens and finish reason; tool calls their
arguments' hash and success; a tripped guardrail ends the run with exit
reason ``guardrail_tripped``.

It also puts :class:`~.runner.DunetraceAgentRunner` in place of the SDK's
default agent runner, wrapping it, so live policies act with no more lines:
``stop`` raises ``dunetrace.PolicyViolation`` before the run's next model or
tool call, ``switch_model`` changes the model of its later turns (the name
resolved by the call's ``RunConfig.model_provider``), ``inject_prompt`` adds
a user message to the next model call's input. ``uninstrument()`` or
``dt.shutdown()`` takes both off again, putting back what was there.

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
    from .runner import DunetraceAgentRunner

__all__ = ["DunetraceAgentRunner", "DunetracePolicyHooks", "DunetraceTracingProcessor", "instrument", "uninstrument"]

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
    if name == "DunetraceAgentRunner":
        return _load_adapter("runner").DunetraceAgentRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _processors(provider: Any) -> tuple[Any, ...] | None:
    # openai-agents 0.20: the default provider keeps its processors in a
    # tuple on a multi-processor, with no call to read or remove one.
    found = getattr(getattr(provider, "_multi_processor", None), "_processors", None)
    return found if isinstance(found, tuple) else None


class _Installation:
    def __init__(self, client: Dunetrace, processor: Any, replaced: tuple[Any, ...] | None, runner: Any) -> None:
        self.client = client
        self.processor = processor
        #: The SDK's processors that ``replace=True`` took off, to put back.
        self.replaced = replaced
        #: Our runner, wrapping the default runner it replaced (``runner.inner``).
        self.runner = runner

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
        self._detach_runner()
        if self.client.plugins.is_registered(self):
            self.client.plugins.unregister(self)
        self.processor.shutdown()

    def _detach_runner(self) -> None:
        from agents.run import get_default_agent_runner, set_default_agent_runner

        runner = self.runner
        runner.processor = None  # from now on it passes calls on as they are
        inner = runner.inner
        if get_default_agent_runner() is runner:
            set_default_agent_runner(inner)
        else:
            # Someone set a runner of their own after ours (it may wrap ours):
            # theirs stays, and ours inside it changes nothing any more.
            warn_once(
                "openai-agents-runner-replaced",
                "dunetrace: the OpenAI Agents SDK's default runner was replaced after instrument(); "
                "it is left in place, and Dunetrace's policies no longer act through it",
            )


_installed: _Installation | None = None
_lock = threading.Lock()


def instrument(dt: Dunetrace, agent_id: str | None = None, *, replace: bool = False) -> DunetraceTracingProcessor:
    """Report every OpenAI Agents SDK run to ``dt``, and apply its live
    policies to every ``Runner`` call. Idempotent for the same client and
    agent_id; another replaces the first. ``replace=True`` takes the SDK's
    own processors off (``uninstrument()`` puts them back)."""
    global _installed
    processor_class = _load_adapter().DunetraceTracingProcessor
    runner_class = _load_adapter("runner").DunetraceAgentRunner
    from agents.run import get_default_agent_runner, set_default_agent_runner
    from agents.tracing import add_trace_processor, get_trace_provider

    with _lock:
        current = _installed
        if current is not None and current.client is dt and current.processor.agent_id == agent_id:
            return current.processor
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
        runner = runner_class(get_default_agent_runner(), processor)
        set_default_agent_runner(runner)
        installation = _Installation(dt, processor, replaced, runner)
        dt.plugins.register(installation, name=PLUGIN_NAME)
        _installed = installation
        return processor


def uninstrument() -> None:
    """Take the processor and the runner off (and put back what they
    replaced); runs still open end as ``abandoned``."""
    global _installed
    with _lock:
        current, _installed = _installed, None
    if current is not None:
        current.detach()
