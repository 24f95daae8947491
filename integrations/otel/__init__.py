"""Dunetrace and OpenTelemetry: ``pip install 'dunetrace[otel]'``.

Receive: any agent whose framework emits OpenTelemetry spans in the GenAI
semantic conventions (Pydantic AI, Strands, Google ADK, the OpenAI Agents
SDK's OTel bridges) or through an OpenInference or OpenLLMetry instrumentor
(smolagents, CrewAI, LlamaIndex...) becomes Dunetrace runs::

    from dunetrace.integrations.otel import DunetraceSpanProcessor
    provider.add_span_processor(DunetraceSpanProcessor(dt, agent_id="support-bot"))

or, on the global SDK ``TracerProvider``, ``instrument(dt, agent_id=...)``
(``uninstrument()`` or ``dt.shutdown()`` takes it off).

Importing this module imports no OpenTelemetry; the processor's module is
loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .processor import DunetraceSpanProcessor, instrument, uninstrument

__all__ = ["DunetraceSpanProcessor", "instrument", "uninstrument"]


def _processor_module() -> Any:
    from . import processor

    return processor


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(_processor_module(), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
