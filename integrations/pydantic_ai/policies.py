"""``DunetraceCapability``: applies ``switch_model`` and ``inject_prompt``
policies (and ``stop``) to a Pydantic AI agent's model requests::

    agent = Agent(model, tools=[...], capabilities=[DunetraceCapability()])

``instrument()`` alone reports every run and applies ``stop``: its span
processor refuses the next model or tool span of a stopped run as it opens.
A span can refuse a call but not rewrite it, and ``instrument()`` reaches
agents only through ``Agent.instrument_all``, whose settings Pydantic AI
turns into its own ``Instrumentation`` capability for each run
(pydantic-ai-slim 2.78 has no supported way to add another capability to
every agent). Changing a request takes a capability of the agent's own, so
this one line per agent (or per run: ``agent.run(..., capabilities=[...])``).

Before each model request step (``before_model_request``, which runs inside
the request's ``chat`` span, once per step, before a fallback or retry can
change the model) it finds the Dunetrace run that the span processor opened
for the agent span around it, then:

* ``stop``: raises ``dunetrace.PolicyViolation`` (as the span processor does);
* ``switch_model``: the request goes to the model ``run.model_override``
  names, and so does every later request of the run;
* ``inject_prompt``: ``run.pop_prompt_addition()`` is enqueued with
  ``RunContext.enqueue``: a ``UserPromptPart`` in a ``ModelRequest`` of its
  own at the end of the history (Pydantic AI sends it merged into the
  request with the last tool returns), in this request and kept in the
  conversation: later requests carry it as history; it is added once.

Imports Pydantic AI, so it is only imported on first use (see ``__init__``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from opentelemetry.trace import get_current_span
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.models import Model

from dunetrace.log import ErrorGuard, warn_once

from . import serving

if TYPE_CHECKING:
    from pydantic_ai import RunContext
    from pydantic_ai.capabilities.abstract import WrapRunHandler
    from pydantic_ai.models import ModelRequestContext
    from pydantic_ai.run import AgentRunResult

    from dunetrace.integrations.otel import DunetraceSpanProcessor
    from dunetrace.run import Run

__all__ = ["DunetraceCapability", "ModelSource"]

#: A policy's model name -> the model to call: a mapping (its values models
#: or names), or a function of the name. None: ``pydantic_ai.models.infer_model``.
ModelSource = Mapping[str, Model | str] | Callable[[str], Model | str] | None

_G_RUN = ErrorGuard("pydantic_ai.capability.wrap_run")
_G_REQUEST = ErrorGuard("pydantic_ai.capability.before_model_request")


class _Models:
    """Policy model names resolved once each, shared by every run of one
    capability (a model built by ``infer_model`` holds an HTTP client)."""

    def __init__(self, source: ModelSource) -> None:
        self.source = source
        self.resolved: dict[str, Model | None] = {}
        self.lock = threading.Lock()

    def get(self, name: str) -> Model | None:
        with self.lock:
            if name in self.resolved:
                return self.resolved[name]
        model: Model | None = None
        try:
            source = self.source
            found: Any = name
            if isinstance(source, Mapping):
                if name not in source:
                    raise LookupError(f"not in DunetraceCapability(models=...), which has {sorted(source)}")
                found = source[name]
            elif callable(source):
                found = source(name)
            if isinstance(found, str):
                from pydantic_ai.models import infer_model

                found = infer_model(found)
            if not isinstance(found, Model):
                raise TypeError(f"got {found!r}, not a Pydantic AI Model or a model name")
            model = found
        except Exception as exc:  # the user's mapping or provider: logged, the agent goes on
            warn_once(
                f"pydantic-ai-switch-model:{name}",
                "dunetrace: switch_model to %r: no Pydantic AI model for that name (%r); the agent keeps its model",
                name,
                exc,
            )
        with self.lock:
            self.resolved[name] = model
        return model


@dataclass
class DunetraceCapability(AbstractCapability[Any]):
    """Applies the live policies of each Dunetrace run to the agent's model
    requests: ``stop`` raises ``PolicyViolation`` before the request,
    ``switch_model`` sends this and every later request of the run to the
    model it names, ``inject_prompt`` adds its message (a user prompt part)
    to the next request.

    ``models`` turns a policy's model name into a Pydantic AI model: a
    mapping of names to models (or to model names), or a function of the
    name; by default ``pydantic_ai.models.infer_model(name)``, as
    ``Agent("openai:gpt-4o-mini")`` does. A name that cannot be resolved is
    logged once and the agent keeps its model. ``processor``: the
    ``DunetraceSpanProcessor`` that reports the agent (default: the one
    ``instrument()`` installed, looked up at each run)."""

    models: ModelSource = None
    processor: DunetraceSpanProcessor | None = None
    _: KW_ONLY
    #: One per agent: two of it resolve to one (the last), as Pydantic AI's
    #: ``combine`` does for a fixed id.
    id: str | None = "dunetrace"
    _resolver: _Models = field(init=False, repr=False, compare=False)
    #: Per run (set by ``wrap_run`` on the copy ``for_run`` returns).
    _agent_span: int | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        models = self.models
        if models is not None and not (isinstance(models, Mapping) or callable(models)):
            raise TypeError(
                f"DunetraceCapability(models=...) takes a mapping of names to models or a function of a name; "
                f"got {models!r}"
            )
        processor = self.processor
        if processor is not None and not hasattr(getattr(processor, "translator", None), "run_of"):
            raise TypeError(f"DunetraceCapability(processor=...) takes a DunetraceSpanProcessor; got {processor!r}")
        self._resolver = _Models(models)

    @classmethod
    def get_serialization_name(cls) -> str | None:
        return None  # holds Python objects (models, a processor): not for YAML specs

    async def for_run(self, ctx: RunContext[Any]) -> DunetraceCapability:
        run_copy = replace(self)
        run_copy._resolver = self._resolver
        return run_copy

    def _processor(self) -> Any:
        if self.processor is not None:
            return self.processor
        from . import _installed

        if _installed is None:
            warn_once(
                "pydantic-ai-capability-idle",
                "dunetrace: DunetraceCapability is on an agent but nothing reports its runs; call "
                "dunetrace.integrations.pydantic_ai.instrument(dt) or pass DunetraceCapability(processor=...)",
            )
            return None
        return _installed.processor

    # -- the run: which agent span is ours ----------------------------------------

    async def wrap_run(self, ctx: RunContext[Any], *, handler: WrapRunHandler) -> AgentRunResult[Any]:
        agent_span = None
        with _G_RUN:
            # Pydantic AI's Instrumentation is the outermost capability: its
            # agent span is the current span here.
            span_id = get_current_span().get_span_context().span_id
            if span_id:
                agent_span = self._agent_span = span_id
                serving.add(span_id)
        try:
            return await handler()
        finally:
            if agent_span is not None:
                serving.discard(agent_span)

    def _run(self) -> Run | None:
        processor = self._processor()
        if processor is None:
            return None
        span = get_current_span()
        parent = getattr(span, "parent", None)  # the SDK's span: its parent's context
        ids = (self._agent_span, span.get_span_context().span_id, getattr(parent, "span_id", None))
        run: Run | None = processor.translator.run_of(*(i for i in ids if i))
        return run

    # -- each model request --------------------------------------------------------

    async def before_model_request(
        self, ctx: RunContext[Any], request_context: ModelRequestContext
    ) -> ModelRequestContext:
        run = None
        with _G_REQUEST:
            run = self._run()
        if run is None:
            return request_context
        run.raise_if_stopped()
        with _G_REQUEST:
            name = run.model_override
            if name is not None:
                model = self._resolver.get(name)
                if model is not None:
                    request_context.model = model
            added = run.pop_prompt_addition()
            if added is not None:
                ctx.enqueue(added)
        return request_context
