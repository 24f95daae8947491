"""Policies in a CrewAI crew, through CrewAI's call hooks (crewai 1.15):
a global ``before_llm_call`` hook raises ``PolicyViolation`` after a stop
policy triggered, and adds ``inject_prompt`` messages to the agent's
conversation; a ``before_tool_call`` hook blocks tool calls after a stop.

CrewAI lets only its own ``HookAborted`` out of a hook (any other exception
is swallowed, fail-open), so the exception raised is a ``PolicyViolation``
that is also a ``HookAborted``; it reaches the caller of ``kickoff()``.

The events of the crew are translated on Dunetrace's drain thread, after
the fact; a hook first has the events so far translated (waiting for
CrewAI's handler pool), so the policies have seen every call before the
next one is allowed. It does that only while the client has a stop or
inject_prompt policy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dunetrace.log import ErrorGuard
from dunetrace.policies import PolicyViolation

if TYPE_CHECKING:
    from dunetrace import Dunetrace, Run

    from .adapter import _Installation

__all__ = ["PolicyHooks"]

_G_LLM = ErrorGuard("crewai.before_llm_call")
_G_TOOL = ErrorGuard("crewai.before_tool_call")
_ACTS_BEFORE_A_CALL = ("stop", "inject_prompt")

_violation_class: type | None = None


def _crew_violation(violation: PolicyViolation) -> PolicyViolation:
    """The same violation as a CrewAI ``HookAborted`` too; its class is
    still named PolicyViolation, as the run's ``error_type`` says."""
    global _violation_class
    if _violation_class is None:
        from crewai.hooks import HookAborted

        class CrewPolicyViolation(PolicyViolation, HookAborted):  # type: ignore[misc]
            def __init__(self, policy: str, reason: str, run_id: str | None = None) -> None:
                PolicyViolation.__init__(self, policy, reason, run_id)
                self.source = "dunetrace"  # HookAborted's fields, read by CrewAI's telemetry

        CrewPolicyViolation.__name__ = CrewPolicyViolation.__qualname__ = "PolicyViolation"
        _violation_class = CrewPolicyViolation
    made = _violation_class(violation.policy, violation.reason, violation.run_id)
    made.reason = violation.reason
    return made


class PolicyHooks:
    """The two hooks of one instrumented client."""

    def __init__(self, client: Dunetrace, installation: _Installation) -> None:
        self.client = client
        self.installation = installation
        self.active = True  # until uninstrument()
        self.installed = False

    def register(self) -> None:
        """Install the hooks once the client has a policy they serve (now,
        or when one is added): with no hook registered, CrewAI skips its
        hook machinery on every call."""
        engine = self.client._policies
        engine.framework_limits(
            "CrewAI",
            frozenset({"switch_model"}),
            "CrewAI gives hooks no way to change an agent's LLM for one call",
        )
        if any(p.then.kind in _ACTS_BEFORE_A_CALL for p in engine.policies):
            self._install()
        else:
            engine.when_added(self._added)

    def _added(self, policy: Any) -> None:
        if self.active and not self.installed and policy.then.kind in _ACTS_BEFORE_A_CALL:
            self._install()

    def _install(self) -> None:
        from crewai.hooks import register_before_llm_call_hook, register_before_tool_call_hook

        register_before_llm_call_hook(self.before_llm_call)
        register_before_tool_call_hook(self.before_tool_call)
        self.installed = True

    def unregister(self) -> None:
        self.active = False
        if not self.installed:
            return
        from crewai.hooks import unregister_before_llm_call_hook, unregister_before_tool_call_hook

        unregister_before_llm_call_hook(self.before_llm_call)
        unregister_before_tool_call_hook(self.before_tool_call)
        self.installed = False

    def _runs(self, context: Any) -> list[Run]:
        """The agent's run and its crew's, once every event so far is
        translated; empty when no policy could act before a call."""
        if not any(p.then.kind in _ACTS_BEFORE_A_CALL for p in self.client.policies):
            return []
        installation = self.installation
        installation.catch_up()
        state = installation.assembler.run_state_of(getattr(context, "agent", None), getattr(context, "task", None))
        if state is None:
            return []
        runs = [state.run]
        root = state.crew.root
        if root is not None and root is not state:
            runs.append(root.run)
        return runs

    def before_llm_call(self, context: Any) -> None:
        violation = None
        with _G_LLM:
            runs = self._runs(context)
            for run in runs:
                if run._violation is not None:
                    violation = _crew_violation(run._violation)
                    break
            else:
                for run in runs:
                    added = run.pop_prompt_addition()
                    messages = getattr(context, "messages", None)
                    if added is not None and isinstance(messages, list):
                        messages.append({"role": "user", "content": added})  # in place, as CrewAI asks
        if violation is not None:
            raise violation

    def before_tool_call(self, context: Any) -> bool | None:
        with _G_TOOL:
            if any(run._violation is not None for run in self._runs(context)):
                return False  # blocks this tool call; the next model call raises
        return None
