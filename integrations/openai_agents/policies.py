"""Live policies in OpenAI Agents SDK runs: which Dunetrace run a call of the
SDK belongs to, and what the policies that triggered for it ask of the call.

The SDK calls every trace processor inside a ``try`` that logs and drops
what it raises (openai-agents 0.20, ``agents.tracing.provider``), so the
tracing processor reports a stop but cannot act on it. ``instrument()``
therefore also installs a runner (:mod:`.runner`) that hands each
``Runner.run`` / ``run_sync`` / ``run_streamed`` run hooks, a model input
filter and a model choice of ours; they ask a :class:`CallPolicies` of the
call, which reads the run from the SDK's current span as the processor keys
it:

* ``stop``: the run hooks raise ``dunetrace.PolicyViolation`` before the
  next model call (``on_llm_start``) and the next tool call
  (``on_tool_start``) of a run that a ``stop`` policy stopped, or of a run
  inside it (a handoff's agent, an agent run as a tool: child runs). A
  stop inside an agent run as a tool is raised again at the next call of
  the agent that called it, since the SDK hands that agent the tool's
  error as text.
* ``switch_model``: the model the run's later turns use.
* ``inject_prompt``: the text added to the next model call's input.

:class:`DunetracePolicyHooks` is the one line the SDK needed before
``instrument()`` did this itself; passing it is no longer needed, and
harmless: the runner's hooks raise first, and a stop is counted once.
"""

from __future__ import annotations

import contextvars
from typing import TYPE_CHECKING, Any

from agents.exceptions import AgentsException
from agents.lifecycle import RunHooks
from agents.tracing import get_current_span, get_current_trace

from dunetrace import PolicyViolation
from dunetrace.log import ErrorGuard, warn_once

if TYPE_CHECKING:
    from dunetrace.integrations.otel.state import RunState

    from .adapter import DunetraceTracingProcessor

__all__ = ["AgentsPolicyViolation", "CallPolicies", "DunetracePolicyHooks", "active_call"]

_G_FIND = ErrorGuard("openai_agents.policies.find")

#: The runner call the current task or thread is inside (an agent run as a
#: tool runs its own call inside its parent's).
active_call: contextvars.ContextVar[CallPolicies | None] = contextvars.ContextVar(
    "dunetrace_openai_agents_call", default=None
)


def current_chain(processor: DunetraceTracingProcessor) -> list[RunState]:
    """The run the SDK's current span is in, then its parent runs, nearest
    first; empty outside a run the processor keeps."""
    span = get_current_span()
    trace = get_current_trace()
    keys = [span.span_id, span.parent_id] if span is not None else []
    if trace is not None:
        keys.append(trace.trace_id)
    state = processor.translator.state_of(*(key for key in keys if key))
    chain: list[RunState] = []
    while state is not None and len(chain) < 64:
        chain.append(state)
        state = state.parent
    return chain


def _refuse(processor: DunetraceTracingProcessor, chain: list[RunState]) -> None:
    """The runs ``chain`` holds end with error type PolicyViolation: the
    SDK records the error of their spans by message only."""
    for state in chain:
        if state.run is not None:
            processor.refused.add(state.run.run_id)


class AgentsPolicyViolation(PolicyViolation, AgentsException):
    """``dunetrace.PolicyViolation`` as the SDK's own ``AgentsException``
    too: the SDK wraps any other exception of a tool call, its
    ``on_tool_start`` hooks included, in a ``UserError`` (openai-agents
    0.20, ``run_internal.tool_execution``), and lets its own through."""

    def __init__(self, policy: str, reason: str, run_id: str | None = None) -> None:
        PolicyViolation.__init__(self, policy, reason, run_id)


# The class name a caller or a log sees, as the run's error_type says.
AgentsPolicyViolation.__name__ = "PolicyViolation"


def _raise(violation: PolicyViolation) -> None:
    raise AgentsPolicyViolation(violation.policy, violation.reason, violation.run_id)


class CallPolicies:
    """The policies of one runner call (a ``Runner.run``, ``run_sync`` or
    ``run_streamed``), asked by the hooks, the input filter and the model
    choice the runner gave that call."""

    def __init__(self, processor: DunetraceTracingProcessor, outer: CallPolicies | None) -> None:
        self.processor = processor
        #: The call this one runs inside (an agent run as a tool), told of a
        #: stop here so that its own next model or tool call stops too: the
        #: SDK hands a failed agent tool's error to the model as text.
        self.outer = outer
        #: The run the call's first agent is (its handoffs are its children).
        self.root: RunState | None = None
        self.violation: PolicyViolation | None = None
        self.models: dict[str, Any] = {}

    def acting(self, kind: str) -> bool:
        """Whether the client has a policy whose action is ``kind`` (read at
        each use: a policy may be added while the run goes on); without
        one, the call pays no lookup of its run."""
        return any(policy.then.kind == kind for policy in self.processor.client.policies)

    def started(self) -> None:
        """The call's first agent starts (its run is the current one): the
        call's own run, where the part of a chain inside the call ends."""
        if self.root is None:
            self.chain()

    def chain(self) -> list[RunState]:
        """The current run and its parents, nearest first."""
        chain: list[RunState] = []
        with _G_FIND:
            chain = current_chain(self.processor)
            if self.root is None and chain:
                self.root = chain[0]
        return chain

    def _in_call(self, chain: list[RunState]) -> list[RunState]:
        """The part of ``chain`` inside this call: up to the call's own run."""
        root = self.root
        if root is None or root not in chain:
            return chain[:1]
        return chain[: chain.index(root) + 1]

    # -- stop ------------------------------------------------------------------

    def raise_if_stopped(self) -> None:
        violation = self.violation
        if violation is None and not self.acting("stop"):
            return
        chain = self.chain()
        if violation is None:
            for state in chain:
                run = state.run
                if run is not None and run.stopped:
                    try:
                        run.raise_if_stopped()
                    except PolicyViolation as stop:
                        violation = stop
                    break
            if violation is None:
                return
            outer = self.outer
            while outer is not None:
                if outer.violation is None:
                    outer.violation = violation
                outer = outer.outer
        _refuse(self.processor, self._in_call(chain))
        _raise(violation)

    def stopped(self) -> bool:
        if self.violation is not None:
            return True
        return self.acting("stop") and any(s.run is not None and s.run.stopped for s in self.chain())

    # -- inject_prompt ---------------------------------------------------------

    def pop_prompt_addition(self) -> str | None:
        """What ``inject_prompt`` policies added for the runs of this call
        the current agent is in (its own first, then its parent's), once."""
        if not self.acting("inject_prompt") or self.stopped():
            return None  # a stopped run's next call is refused: the text waits
        added = []
        for state in self._in_call(self.chain()):
            text = state.run.pop_prompt_addition() if state.run is not None else None
            if text is not None:
                added.append(text)
        return "\n\n".join(added) if added else None

    # -- switch_model ----------------------------------------------------------

    def model_override(self, provider: Any) -> Any:
        """The model a ``switch_model`` policy chose for the current run (or
        its parent in the call), resolved through ``provider`` (the run
        config's ``model_provider``) once per name; None to keep the
        agent's own."""
        if not self.acting("switch_model"):
            return None
        name = None
        for state in self._in_call(self.chain()):
            if state.run is not None and state.run.model_override is not None:
                name = state.run.model_override
                break
        if name is None:
            return None
        if name not in self.models:
            model = None
            try:
                model = provider.get_model(name)
            except Exception as exc:  # the user's provider: logged, the agent keeps its model
                warn_once(
                    f"openai-agents-switch-model:{name}",
                    "dunetrace: switch_model to %r: the run's model_provider has no model of that name (%r); "
                    "the agent keeps its model",
                    name,
                    exc,
                )
            self.models[name] = model
        return self.models.get(name)


class DunetracePolicyHooks(RunHooks[Any]):
    """Run hooks that raise ``dunetrace.PolicyViolation`` at the next model
    or tool call of a run a ``stop`` policy has stopped. No longer needed:
    ``instrument()`` gives every runner call hooks of its own that do this
    first; passing these as well is harmless. ``processor`` defaults to the
    one ``instrument()`` installed (looked up at each call)."""

    def __init__(self, processor: DunetraceTracingProcessor | None = None) -> None:
        super().__init__()
        self.processor = processor

    def _processor(self) -> DunetraceTracingProcessor | None:
        if self.processor is not None:
            return self.processor
        from . import _installed

        return _installed.processor if _installed is not None else None

    def _raise_if_stopped(self) -> None:
        call = active_call.get()
        if call is not None and (self.processor is None or self.processor is call.processor):
            # The runner's own hooks asked already, before these: a stop they
            # found has been raised, so there is nothing more to ask.
            return
        processor = None
        with _G_FIND:
            processor = self._processor()
        if processor is not None:
            CallPolicies(processor, None).raise_if_stopped()

    async def on_llm_start(self, context: Any, agent: Any, system_prompt: Any, input_items: Any) -> None:
        self._raise_if_stopped()

    async def on_tool_start(self, context: Any, agent: Any, tool: Any) -> None:
        self._raise_if_stopped()
