"""``DunetraceAgentRunner``: the SDK's default agent runner, wrapped, so that
live policies act on every ``Runner.run`` / ``run_sync`` / ``run_streamed``
with no line at the call.

``Runner``'s class methods hand each call to ``agents.run.DEFAULT_AGENT_RUNNER``
(openai-agents 0.20; ``set_default_agent_runner`` is marked experimental).
``instrument()`` puts this runner in its place, wrapping the one that was
there, and for each call passes on what the caller gave with three things
added, each asking the call's :class:`~.policies.CallPolicies`:

* ``hooks``: run hooks that raise ``dunetrace.PolicyViolation`` on
  ``on_llm_start`` / ``on_tool_start`` of a stopped run, then call the
  caller's own hooks (every callback reaches them, in the SDK's order).
* ``run_config``: a copy per call (``dataclasses.replace``; the caller's
  object is never changed) whose ``call_model_input_filter`` runs the
  caller's filter first, then appends the ``inject_prompt`` text as a user
  message at the end of that model call's input.
* the copy's ``model``: read by the SDK at every turn
  (``run_internal.turn_preparation.get_model``; the streamed loop reads it
  before the input filter runs, the other after), it answers the model a
  ``switch_model`` policy chose for the current run, resolved by name
  through the config's ``model_provider``; until then, what the caller set.
  The SDK reads this very object all run long: the one copy it makes (to
  classify a turn's tool calls) reads no model.

When the runner is taken off while another runner wraps it, it only passes
calls on.
"""

from __future__ import annotations

import dataclasses
import inspect
import threading
from typing import TYPE_CHECKING, Any

from agents.lifecycle import AgentHooksBase, RunHooks, RunHooksBase
from agents.run import AgentRunner
from agents.run_config import ModelInputData, RunConfig

from dunetrace.log import ErrorGuard

from .policies import CallPolicies, active_call

if TYPE_CHECKING:
    from .adapter import DunetraceTracingProcessor

__all__ = ["DunetraceAgentRunner"]

_G_COMPOSE = ErrorGuard("openai_agents.runner.compose")
_G_INJECT = ErrorGuard("openai_agents.runner.inject_prompt")
_G_MODEL = ErrorGuard("openai_agents.runner.switch_model")


class DunetraceAgentRunner(AgentRunner):
    """Passes each call to ``inner`` (the runner it replaced) with the
    policies of the run added; ``processor`` None passes calls on as they are."""

    def __init__(self, inner: AgentRunner, processor: DunetraceTracingProcessor | None) -> None:
        if not all(callable(getattr(inner, name, None)) for name in ("run", "run_sync", "run_streamed")):
            raise TypeError(
                "DunetraceAgentRunner(inner, processor) wraps an agent runner, such as "
                f"agents.run.get_default_agent_runner(); got {inner!r}"
            )
        if processor is not None and not hasattr(processor, "translator"):
            raise TypeError(
                "DunetraceAgentRunner(inner, processor) takes the DunetraceTracingProcessor whose runs "
                f"its policies act on (or None); got {processor!r}"
            )
        self.inner = inner
        self.processor = processor

    async def run(self, starting_agent: Any, input: Any, **kwargs: Any) -> Any:
        call, kwargs = self._compose(kwargs)
        if call is None:
            return await self.inner.run(starting_agent, input, **kwargs)
        token = active_call.set(call)
        try:
            return await self.inner.run(starting_agent, input, **kwargs)
        finally:
            active_call.reset(token)

    def run_sync(self, starting_agent: Any, input: Any, **kwargs: Any) -> Any:
        call, kwargs = self._compose(kwargs)
        if call is None:
            return self.inner.run_sync(starting_agent, input, **kwargs)
        token = active_call.set(call)
        try:
            return self.inner.run_sync(starting_agent, input, **kwargs)
        finally:
            active_call.reset(token)

    def run_streamed(self, starting_agent: Any, input: Any, **kwargs: Any) -> Any:
        call, kwargs = self._compose(kwargs)
        if call is None:
            return self.inner.run_streamed(starting_agent, input, **kwargs)
        # The run's task is created inside, and takes this context with it.
        token = active_call.set(call)
        try:
            return self.inner.run_streamed(starting_agent, input, **kwargs)
        finally:
            active_call.reset(token)

    def _compose(self, kwargs: dict[str, Any]) -> tuple[CallPolicies | None, dict[str, Any]]:
        processor = self.processor
        if processor is None:
            return None, kwargs
        with _G_COMPOSE:
            hooks = kwargs.get("hooks")
            config = _config_of(kwargs.get("run_config"))
            if config is None or not _hooks_we_can_wrap(hooks):
                # The SDK refuses these itself, with its own message.
                return None, kwargs
            call = CallPolicies(processor, active_call.get())
            composed = {
                **kwargs,
                "hooks": _PolicyHooks(call, hooks),
                "run_config": _policy_config(config, call),
            }
            return call, composed
        return None, kwargs


def _hooks_we_can_wrap(hooks: Any) -> bool:
    return hooks is None or (isinstance(hooks, RunHooksBase) and not isinstance(hooks, AgentHooksBase))


def _config_of(value: Any) -> RunConfig | None:
    """The caller's RunConfig (a dict made one as the SDK makes it), the
    caller's own when ``value`` is a copy of ours (an agent run as a tool
    gets its parent's config), or None when the SDK would refuse it."""
    if value is None:
        return RunConfig()
    if isinstance(value, RunConfig):
        base = value.__dict__.get("_dunetrace_base")
        return base if isinstance(base, RunConfig) else value
    if isinstance(value, dict):
        try:
            from agents.run_config import _coerce_run_config

            return _coerce_run_config(value)
        except Exception:
            return None
    return None


# -- the run config: the caller's, copied, with our filter and model ---------


class _PolicyConfig:
    """Mixed into a copy of the caller's RunConfig class: ``model`` answers
    the model a ``switch_model`` policy chose for the current run."""

    @property
    def model(self) -> Any:
        own = self.__dict__.get("model")
        call = self.__dict__.get("_dunetrace_call")
        if call is None:
            return own
        chosen = None
        with _G_MODEL:
            chosen = call.model_override(self.__dict__.get("model_provider"))
        return own if chosen is None else chosen

    @model.setter
    def model(self, value: Any) -> None:
        self.__dict__["model"] = value


_config_classes: dict[type, type] = {}
_classes_lock = threading.Lock()


def _policy_config_class(base: type) -> type:
    with _classes_lock:
        found = _config_classes.get(base)
        if found is None:
            found = _config_classes[base] = type(f"Dunetrace{base.__name__}", (_PolicyConfig, base), {})
        return found


def _policy_config(config: RunConfig, call: CallPolicies) -> RunConfig:
    theirs = config.call_model_input_filter
    copy = dataclasses.replace(config, call_model_input_filter=_InputFilter(call, theirs))
    # The same fields in the same instance dict: only the class changes, to
    # one whose ``model`` reads the policy first.
    copy.__class__ = _policy_config_class(type(config))
    copy.__dict__["_dunetrace_call"] = call
    copy.__dict__["_dunetrace_base"] = config
    return copy


class _InputFilter:
    """The caller's ``call_model_input_filter`` first, then the
    ``inject_prompt`` text appended as a user message to that call's input.

    A user message: the agent's instructions stay its own, every model the
    SDK speaks to (Responses, Chat Completions, LiteLLM's providers) takes
    a user message at the end of the input, where a system or developer
    message in mid-conversation is refused or moved by some; and it is what
    the other integrations add. It goes into this model call only: the SDK
    keeps no filtered input in the run's history, so the text is sent once."""

    def __init__(self, call: CallPolicies, theirs: Any) -> None:
        self.call = call
        self.theirs = theirs

    async def __call__(self, data: Any) -> Any:
        theirs = self.theirs
        if theirs is not None:
            result = theirs(data)
            if inspect.isawaitable(result):
                result = await result
        else:
            result = data.model_data
        if not isinstance(result, ModelInputData) or not isinstance(result.input, list):
            return result  # the SDK refuses it with its own message
        with _G_INJECT:
            added = self.call.pop_prompt_addition()
            if added is not None:
                result.input = [*result.input, {"role": "user", "content": added}]
        return result


# -- the run hooks: ours first, then the caller's ----------------------------


class _PolicyHooks(RunHooks[Any]):
    """Raises a stop before the call on ``on_llm_start`` / ``on_tool_start``,
    notes the call's own run on its first ``on_agent_start``; every callback
    then goes on to the caller's hooks."""

    def __init__(self, call: CallPolicies, theirs: RunHooksBase[Any, Any] | None) -> None:
        super().__init__()
        self.call = call
        self.theirs = theirs

    async def on_agent_start(self, context: Any, agent: Any) -> None:
        self.call.started()
        if self.theirs is not None:
            await self.theirs.on_agent_start(context, agent)

    async def on_llm_start(self, context: Any, agent: Any, system_prompt: Any, input_items: Any) -> None:
        self.call.raise_if_stopped()
        if self.theirs is not None:
            await self.theirs.on_llm_start(context, agent, system_prompt, input_items)

    async def on_tool_start(self, context: Any, agent: Any, tool: Any) -> None:
        self.call.raise_if_stopped()
        if self.theirs is not None:
            await self.theirs.on_tool_start(context, agent, tool)


def _forwarder(name: str) -> Any:
    async def forward(self: _PolicyHooks, *args: Any, **kwargs: Any) -> Any:
        if self.theirs is not None:
            return await getattr(self.theirs, name)(*args, **kwargs)
        return None

    forward.__name__ = name
    return forward


# Every other callback the SDK has (0.20: on_llm_end, on_agent_end,
# on_handoff, on_tool_end) goes to the caller's hooks as it
# came; read from the SDK's base class, so a callback added later is passed on too.
for _name in dir(RunHooksBase):
    if _name.startswith("on_") and _name not in _PolicyHooks.__dict__:
        setattr(_PolicyHooks, _name, _forwarder(_name))
