"""The thin part that touches CrewAI: a ``BaseEventListener`` on
``crewai_event_bus`` that hands every event to an :class:`EventAssembler`.

CrewAI is imported only when :func:`instrument` runs; the listener class is
built then, once, because it subclasses CrewAI's ``BaseEventListener``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from dunetrace.log import capture_internal_errors, warn_once
from dunetrace.plugins import hookimpl

from ._assembler import EventAssembler

if TYPE_CHECKING:
    from dunetrace import Dunetrace

__all__ = ["instrument", "installed", "uninstrument"]

_INSTALL_HINT = "pip install 'dunetrace[crewai]'"

#: Event types translated into run events (CrewAI dispatches by exact class,
#: so each is subscribed by name).
TRANSLATED = (
    "CrewKickoffStartedEvent",
    "CrewKickoffCompletedEvent",
    "CrewKickoffFailedEvent",
    "AgentExecutionStartedEvent",
    "AgentExecutionCompletedEvent",
    "AgentExecutionErrorEvent",
    "TaskFailedEvent",
    "LLMCallStartedEvent",
    "LLMCallCompletedEvent",
    "LLMCallFailedEvent",
    "ToolUsageStartedEvent",
    "ToolUsageFinishedEvent",
    "ToolUsageErrorEvent",
)

#: Scopes that sit between a run and its LLM/tool events (CrewAI 1.15 runs
#: the agent executor as a Flow, so LLM calls are children of
#: ``flow_started``): subscribed only so those events find their run.
SCOPES = (
    "TaskStartedEvent",
    "FlowStartedEvent",
    "MethodExecutionStartedEvent",
    "AgentReasoningStartedEvent",
    "LLMGuardrailStartedEvent",
    "MemoryRetrievalStartedEvent",
    "MemorySaveStartedEvent",
    "MemoryQueryStartedEvent",
    "KnowledgeRetrievalStartedEvent",
    "KnowledgeQueryStartedEvent",
    "MCPToolExecutionStartedEvent",
    "PlanStepStartedEvent",
)

_listener_class: type | None = None
_class_lock = threading.Lock()


def _crewai_events() -> Any:
    try:
        import crewai.events as events
    except ImportError as exc:
        raise ImportError(
            f"dunetrace.integrations.crewai needs CrewAI (crewai>=1.15): {_INSTALL_HINT}"
        ) from exc
    return events


def _get_listener_class() -> type:
    """``DunetraceCrewAIListener``, created on first use so that importing
    this module does not import CrewAI."""
    global _listener_class
    with _class_lock:
        if _listener_class is not None:
            return _listener_class
        events = _crewai_events()

        class DunetraceCrewAIListener(events.BaseEventListener):  # type: ignore[misc, name-defined]
            """Subscribes to CrewAI's event bus and feeds a Dunetrace
            :class:`EventAssembler`. ``off()`` unregisters every handler it
            added."""

            def __init__(self, assembler: EventAssembler) -> None:
                self.assembler = assembler
                self.handlers: list[tuple[type, Any]] = []
                super().__init__()  # calls setup_listeners(crewai_event_bus)

            def setup_listeners(self, crewai_event_bus: Any) -> None:
                self.bus = crewai_event_bus
                handle = self.assembler.handle

                # An async handler: CrewAI 1.15 runs async handlers on its one
                # event-loop thread in emission order, where sync handlers go
                # to a 10-thread pool and arrive out of order.
                async def on_event(source: Any, event: Any) -> None:
                    handle(event, source)

                for name in TRANSLATED + SCOPES:
                    event_type = getattr(events, name, None)
                    if event_type is None:  # renamed in some CrewAI version
                        warn_once(f"crewai-missing:{name}", "dunetrace: crewai.events has no %s; not subscribed", name)
                        continue
                    crewai_event_bus.on(event_type)(on_event)
                    self.handlers.append((event_type, on_event))

            def off(self) -> None:
                for event_type, handler in self.handlers:
                    self.bus.off(event_type, handler)
                self.handlers.clear()

        _listener_class = DunetraceCrewAIListener
        return _listener_class


class _Installation:
    """What :func:`instrument` added for one client; registered in its plugin
    host so ``dt.shutdown()`` detaches it."""

    def __init__(self, client: Dunetrace, agent_id: str) -> None:
        self.client = client
        self.agent_id = agent_id
        self.assembler = EventAssembler(client, agent_id)
        self.listener = _get_listener_class()(self.assembler)

    @hookimpl
    def dunetrace_shutdown(self, client: Dunetrace) -> None:
        uninstrument(client)


_installed: dict[int, _Installation] = {}
_lock = threading.Lock()


def instrument(dt: Dunetrace, agent_id: str = "crewai") -> Any:
    """Report every CrewAI crew kickoff in this process to ``dt``.

    A kickoff is a run of ``agent_id``; each agent's execution of a task is
    a child run of ``"<agent_id>.<agent role>"``. Idempotent: a second call
    for the same client returns the listener already installed. Raises
    ImportError when CrewAI is not installed.
    """
    if not isinstance(agent_id, str) or not agent_id.strip():
        raise ValueError(f"instrument(dt, agent_id=...) needs a non-empty string; got {agent_id!r}")
    _crewai_events()
    with _lock:
        found = _installed.get(id(dt))
        if found is not None and found.client is dt:
            if found.agent_id != agent_id:
                warn_once(
                    "crewai-reinstrument",
                    "dunetrace: CrewAI is already instrumented for this client as %r; %r ignored "
                    "(call uninstrument() first to change it)",
                    found.agent_id,
                    agent_id,
                )
            return found.listener
        installation = _Installation(dt, agent_id)
        _installed[id(dt)] = installation
    with capture_internal_errors("crewai.instrument"):
        dt.plugins.register(installation, name=f"dunetrace.crewai.{id(installation)}")
    return installation.listener


def uninstrument(dt: Dunetrace | None = None) -> None:
    """Unregister every handler :func:`instrument` added (for ``dt``, or for
    every client), and end runs still open as abandoned."""
    with _lock:
        if dt is None:
            removed = list(_installed.values())
            _installed.clear()
        else:
            one = _installed.pop(id(dt), None)
            removed = [one] if one is not None and one.client is dt else []
    for installation in removed:
        with capture_internal_errors("crewai.uninstrument"):
            installation.listener.off()
            installation.assembler.close()
            if installation.client.plugins.is_registered(installation):
                installation.client.plugins.unregister(installation)


def installed(dt: Dunetrace) -> bool:
    """True while ``dt`` is instrumented."""
    with _lock:
        found = _installed.get(id(dt))
        return found is not None and found.client is dt
