"""Dunetrace and OpenTelemetry: ``pip install 'dunetrace[otel]'``.

Receive: any agent whose framework emits OpenTelemetry spans in the GenAI
semantic conventions (Pydantic AI, Strands, Google ADK, the OpenAI Agents
SDK's OTel bridges) or through an OpenInference or OpenLLMetry instrumentor
(smolagents, CrewAI, LlamaIndex...) becomes Dunetrace runs::

    from dunetrace.integrations.otel import DunetraceSpanProcessor
    provider.add_span_processor(DunetraceSpanProcessor(dt, agent_id="support-bot"))

or, on the global SDK ``TracerProvider``, ``instrument(dt, agent_id=...)``
(``uninstrument()`` or ``dt.shutdown()`` takes it off).

Export: every Dunetrace run also as spans through your ``TracerProvider``
(to Tempo, Honeycomb, Datadog, Jaeger...), hashes only::

    from dunetrace.integrations.otel import export_to
    export_to(dt, provider)          # Dunetrace(export="none") to send only there

Importing this module imports no OpenTelemetry; the modules that need it are
loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .adapter import DunetraceSpanProcessor, instrument, uninstrument
    from .export import OtelExport, export_to

__all__ = ["DunetraceSpanProcessor", "OtelExport", "export_to", "instrument", "uninstrument"]

_MODULES = {
    "DunetraceSpanProcessor": "adapter",
    "instrument": "adapter",
    "uninstrument": "adapter",
    "OtelExport": "export",
    "export_to": "export",
}


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    try:
        loaded = import_module(f"{__name__}.{module}")
    except ImportError as exc:
        if not (exc.name or "").startswith("opentelemetry"):
            raise
        raise ImportError(f"{__name__} needs the OpenTelemetry SDK: pip install 'dunetrace[otel]' ({exc})") from exc
    return getattr(loaded, name)
