"""``stop`` policies in OpenAI Agents SDK runs: run hooks the runner hears.

The SDK calls every trace processor inside a ``try`` that logs and drops
what it raises (openai-agents 0.20, ``agents.tracing.provider``), so the
tracing processor can report a stop but cannot act on it. The run's hooks
are awaited by the runner itself, right before each model call
(``on_llm_start``) and each tool call (``on_tool_start``), and what they
raise ends ``Runner.run`` / ``run_sync`` / ``run_streamed``. The SDK has no
global hooks, so this takes one line at the call::

    Runner.run_sync(agent, question, hooks=DunetracePolicyHooks())

The hooks find the Dunetrace run from the SDK's current span and trace, as
the processor ``instrument()`` installed keys them, and raise
``dunetrace.PolicyViolation`` when a ``stop`` policy has triggered for it.
Hooks of your own: subclass ``DunetracePolicyHooks`` and call ``super()``
in ``on_llm_start`` / ``on_tool_start``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.lifecycle import RunHooks
from agents.tracing import get_current_span, get_current_trace

from dunetrace.log import ErrorGuard

if TYPE_CHECKING:
    from dunetrace.run import Run

    from .adapter import DunetraceTracingProcessor

__all__ = ["DunetracePolicyHooks"]

_G_FIND = ErrorGuard("openai_agents.policy_hooks")


class DunetracePolicyHooks(RunHooks[Any]):
    """Run hooks that raise ``dunetrace.PolicyViolation`` at the next model
    or tool call of a run a ``stop`` policy has stopped. ``processor``
    defaults to the one ``instrument()`` installed (looked up at each call)."""

    def __init__(self, processor: DunetraceTracingProcessor | None = None) -> None:
        super().__init__()
        self.processor = processor

    def _processor(self) -> DunetraceTracingProcessor | None:
        if self.processor is not None:
            return self.processor
        from . import _installed

        return _installed.processor if _installed is not None else None

    def _run(self, processor: DunetraceTracingProcessor) -> Run | None:
        span = get_current_span()
        trace = get_current_trace()
        keys = [span.span_id, span.parent_id] if span is not None else []
        if trace is not None:
            keys.append(trace.trace_id)
        return processor.translator.run_of(*(key for key in keys if key))

    def _raise_if_stopped(self) -> None:
        run = processor = None
        with _G_FIND:
            processor = self._processor()
            if processor is not None:
                run = self._run(processor)
        if run is not None and processor is not None and run.stopped:
            # The run's end reads its error from the SDK's span, which keeps
            # only a message: the processor is told what it is.
            processor.refused.add(run.run_id)
            run.raise_if_stopped()

    async def on_llm_start(self, context: Any, agent: Any, system_prompt: Any, input_items: Any) -> None:
        self._raise_if_stopped()

    async def on_tool_start(self, context: Any, agent: Any, tool: Any) -> None:
        self._raise_if_stopped()
