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

Live policies: ``stop`` acts. Once a stop policy has triggered for a run,
the run's next model or tool span raises ``dunetrace.PolicyViolation`` from
the span processor as Pydantic AI opens it, before the model or tool is
called; Pydantic AI lets it out of ``run_sync`` / ``run`` and the run ends
``run.errored``. ``switch_model`` and ``inject_prompt`` trigger and are
reported but change nothing: a span can refuse a call, not rewrite it, and
``instrument()`` changes no agent (a per-agent capability could; not done).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from dunetrace.log import warn_once
from dunetrace.plugins import hookimpl

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from dunetrace import Dunetrace
    from dunetrace.integrations.otel import DunetraceSpanProcessor

__all__ = ["instrument", "uninstrument"]

PLUGIN_NAME = "dunetrace.pydantic_ai"


def _agent_class() -> Any:
    try:
        from pydantic_ai import Agent
    except ImportError as exc:
        raise ImportError(
            f"dunetrace.integrations.pydantic_ai needs Pydantic AI: pip install 'dunetrace[pydantic-ai]' ({exc})"
        ) from exc
    return Agent


class _Installation:
    def __init__(self, client: Dunetrace, agent_id: str | None, previous: Any, provider: Any, processor: Any) -> None:
        self.client = client
        self.agent_id = agent_id
        self.previous = previous
        self.provider = provider
        self.processor = processor

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
            return current.processor  # type: ignore[no-any-return]
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
        agent_class.instrument_all(InstrumentationSettings(tracer_provider=provider))
        dt._policies.framework_limits(
            "Pydantic AI",
            frozenset({"switch_model", "inject_prompt"}),
            "its spans report calls but cannot change them; stop works (at the next model or tool call)",
        )
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
