"""Dunetrace for Pydantic AI: ``pip install 'dunetrace[pydantic-ai]'``.

    from dunetrace.integrations.pydantic_ai import instrument
    instrument(dt, agent_id="support-bot")

Every ``Agent.run`` / ``run_sync`` / ``run_stream`` / ``iter`` of an agent
that has not chosen its own instrumentation becomes a Dunetrace run.

It works through Pydantic AI's own OpenTelemetry instrumentation and the
span receiver (:class:`dunetrace.integrations.otel.DunetraceSpanProcessor`),
not through hooks of its own: Pydantic AI's spans already carry everything
the wire contract has (model, input and output tokens, finish reasons, each
tool call with its arguments, result and error, nested agents, the run's
error), in the GenAI semantic conventions, and read there they stay right as
Pydantic AI changes its internals. What this costs: a model call is reported
when it ends (its ``llm.called`` carries the call's own start time).

``instrument`` calls ``Agent.instrument_all`` with a tracer provider holding
the Dunetrace processor: yours when you pass ``tracer_provider=`` (your
exporters keep getting the spans), else a private one that sends nowhere
else. ``uninstrument()`` (or ``dt.shutdown()``) puts back what was there.
An agent built with ``instrument=...`` of its own is not changed: add a
``DunetraceSpanProcessor`` to the provider it uses instead.

Live policies: ``stop`` needs nothing more. Once a stop policy has
triggered for a run, the run's next model or tool span raises
``dunetrace.PolicyViolation`` from the span processor as Pydantic AI opens
it, before the model or tool is called; Pydantic AI lets it out of
``run_sync`` / ``run`` and the run ends ``run.errored``.

``switch_model`` and ``inject_prompt`` rewrite a request, which a span
cannot do: they act on agents given the capability
:class:`~.policies.DunetraceCapability` (one line per agent,
``Agent(..., capabilities=[DunetraceCapability()])``; Pydantic AI has no
supported way to add a capability to every agent). On an agent without it
they trigger and are reported, change nothing, and warn once when they
trigger.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from dunetrace.log import ErrorGuard, warn_once
from dunetrace.plugins import hookimpl

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from dunetrace import Dunetrace
    from dunetrace.integrations.otel import DunetraceSpanProcessor
    from dunetrace.live import Signal
    from dunetrace.run import Run

    from .policies import DunetraceCapability

__all__ = ["DunetraceCapability", "instrument", "uninstrument"]

PLUGIN_NAME = "dunetrace.pydantic_ai"

#: Agent span ids of the runs a DunetraceCapability is serving now (kept by
#: its ``wrap_run``): a ``switch_model`` or ``inject_prompt`` that triggers
#: on any other run of the processor warns that nothing applies it.
serving: set[int] = set()

_G_SIGNAL = ErrorGuard("pydantic_ai.policy_listener")
_REWRITES = frozenset({"switch_model", "inject_prompt"})


def _agent_class() -> Any:
    try:
        from pydantic_ai import Agent
    except ImportError as exc:
        raise ImportError(
            f"dunetrace.integrations.pydantic_ai needs Pydantic AI: pip install 'dunetrace[pydantic-ai]' ({exc})"
        ) from exc
    return Agent


def __getattr__(name: str) -> Any:
    if name == "DunetraceCapability":
        _agent_class()  # the clear message when Pydantic AI is missing
        from .policies import DunetraceCapability

        return DunetraceCapability
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _served(processor: Any, run: Run) -> bool | None:
    """Whether a DunetraceCapability serves ``run`` (its agent span is in
    ``serving``); None when ``run`` is not one the processor has open."""
    for state in processor.translator.open_states():
        if state.run is run:
            return not serving.isdisjoint(state.spans)
    return None


class _Installation:
    def __init__(
        self, client: Dunetrace, agent_id: str | None, previous: Any, provider: Any, processor: DunetraceSpanProcessor
    ) -> None:
        self.client = client
        self.agent_id = agent_id
        self.previous = previous
        self.provider = provider
        self.processor = processor
        self.listener = self.rewrite_triggered

    def rewrite_triggered(self, signal: Signal) -> None:
        """A ``switch_model`` / ``inject_prompt`` policy triggered: warn once
        when the run is ours and no DunetraceCapability serves it."""
        if signal.type != "POLICY_TRIGGERED":
            return
        action = signal.evidence.get("action")
        if action not in _REWRITES or signal.run is None:
            return
        with _G_SIGNAL:
            if _served(self.processor, signal.run) is False:
                warn_once(
                    f"pydantic-ai-unapplied:{action}",
                    "dunetrace: policy %r (%s) triggered on a Pydantic AI run of %r whose agent has no "
                    "DunetraceCapability, so it changes nothing there (it is reported); add "
                    "capabilities=[DunetraceCapability()] to the Agent "
                    "(from dunetrace.integrations.pydantic_ai import DunetraceCapability)",
                    signal.evidence.get("policy"),
                    action,
                    signal.run.agent_id,
                )

    @hookimpl
    def dunetrace_shutdown(self, client: Dunetrace) -> None:
        # Called before the client delivers what is left: runs still open
        # end now, so their ends are sent.
        if client is self.client:
            self.processor.shutdown()
            uninstrument()

    def detach(self) -> None:
        from dunetrace.integrations.otel.adapter import _take_off

        _agent_class().instrument_all(self.previous)
        _take_off(self.provider, self.processor)
        client = self.client
        client._listeners = tuple(listener for listener in client._listeners if listener != self.listener)
        if self.client.plugins.is_registered(self):
            self.client.plugins.unregister(self)
        self.processor.shutdown()


_installed: _Installation | None = None
_lock = threading.Lock()


def instrument(
    dt: Dunetrace, agent_id: str | None = None, *, tracer_provider: TracerProvider | None = None
) -> DunetraceSpanProcessor:
    """Report every Pydantic AI agent run to ``dt`` (root runs named
    ``agent_id``, default each agent's ``name``). Idempotent: the same
    client, agent_id and provider return the processor in use; others
    replace it. Returns the span processor."""
    global _installed
    agent_class = _agent_class()
    from opentelemetry.sdk.trace import TracerProvider
    from pydantic_ai.models.instrumented import InstrumentationSettings

    from dunetrace.integrations.otel import DunetraceSpanProcessor

    if tracer_provider is not None and not isinstance(tracer_provider, TracerProvider):
        raise TypeError(f"tracer_provider must be an OpenTelemetry SDK TracerProvider; got {tracer_provider!r}")
    with _lock:
        current = _installed
        if (
            current is not None
            and current.client is dt
            and current.agent_id == agent_id
            and (tracer_provider is None or current.provider is tracer_provider)
        ):
            return current.processor
        previous = getattr(agent_class, "_instrument_default", False)
        if current is not None:
            _installed = None
            current.detach()
            previous = current.previous
        processor = DunetraceSpanProcessor(dt, agent_id)
        provider = tracer_provider
        if provider is None:
            provider = TracerProvider()
            # This provider sends nowhere but to Dunetrace; OTEL_SDK_DISABLED
            # (often set to silence other libraries' telemetry) would make
            # it a no-op and Pydantic AI's runs invisible.
            if getattr(provider, "_disabled", False):
                provider._disabled = False
        elif getattr(provider, "_disabled", False):
            warn_once(
                "pydantic-ai-disabled",
                "dunetrace: OTEL_SDK_DISABLED=true makes the tracer provider you passed a no-op, so Pydantic AI "
                "runs are not reported; unset it, or call instrument() without tracer_provider",
            )
        provider.add_span_processor(processor)
        installation = _Installation(dt, agent_id, previous, provider, processor)
        dt.plugins.register(installation, name=PLUGIN_NAME)
        dt.on_signal(installation.listener)
        agent_class.instrument_all(InstrumentationSettings(tracer_provider=provider))
        _installed = installation
        return processor


def uninstrument() -> None:
    """Put back the instrumentation Pydantic AI had before ``instrument()``
    and take the processor off; runs still open end as ``abandoned``."""
    global _installed
    with _lock:
        current, _installed = _installed, None
    if current is not None:
        current.detach()
