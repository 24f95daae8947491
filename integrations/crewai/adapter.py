"""The thin part that touches CrewAI: a ``BaseEventListener`` on
``crewai_event_bus`` whose handlers put events back in emission order
(:class:`Sequencer`) and hand them to an :class:`Translator`.

CrewAI is imported only when :func:`instrument` runs; the listener class is
built then, once, because it subclasses CrewAI's ``BaseEventListener``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from dunetrace.log import capture_internal_errors, warn_once
from dunetrace.plugins import hookimpl

from .cancel import kickoff_watch
from .errors import emit_watch
from .policies import PolicyHooks
from .sequencer import Sequencer
from .translator import Translator

if TYPE_CHECKING:
    from dunetrace import Dunetrace

__all__ = ["installed", "instrument", "uninstrument"]

_INSTALL_HINT = "pip install 'dunetrace[crewai]'"

_listener_class: type | None = None
_class_lock = threading.Lock()


def _crewai_events() -> Any:
    try:
        import crewai.events as events
    except ImportError as exc:
        raise ImportError(f"dunetrace.integrations.crewai needs CrewAI (crewai>=1.15): {_INSTALL_HINT}") from exc
    return events


def _event_classes(events: Any) -> list[type]:
    """Every CrewAI event class: those ``crewai.events`` exports (importing
    them loads their modules) and any other ``BaseEvent`` subclass loaded."""
    from crewai.events.base_events import BaseEvent as base

    found: dict[type, None] = {}
    for name in getattr(events, "__all__", ()):
        value = getattr(events, name, None)
        if isinstance(value, type) and issubclass(value, base):
            found[value] = None
    stack = [base]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub not in found:
                found[sub] = None
            stack.append(sub)
    return list(found)


def _get_listener_class() -> type:
    """``DunetraceCrewAIListener``, created on first use so that importing
    this module does not import CrewAI."""
    global _listener_class
    with _class_lock:
        if _listener_class is not None:
            return _listener_class
        events = _crewai_events()
        from crewai.events import event_bus as event_bus_module

        class DunetraceCrewAIListener(events.BaseEventListener):  # type: ignore[misc, name-defined]
            """Subscribes to CrewAI's event bus and feeds a Dunetrace
            :class:`Translator`. ``off()`` unregisters every handler it
            added."""

            def __init__(self, assembler: Translator) -> None:
                self.assembler = assembler
                self.sequencer = Sequencer(assembler.handle)
                self.handlers: list[tuple[type, Any]] = []
                super().__init__()  # calls setup_listeners(crewai_event_bus)

            def setup_listeners(self, crewai_event_bus: Any) -> None:
                self.bus = crewai_event_bus
                push, push_inline = self.sequencer.push, self.sequencer.push_inline
                replaying = getattr(event_bus_module, "is_replaying", lambda: False)

                # Sync handlers, run on CrewAI's 10-thread pool (out of order;
                # the sequencer restores the order). Every event class is
                # subscribed, even those we do not translate, so that every
                # emission_sequence number arrives and none is waited for.
                def on_event(source: Any, event: Any) -> None:
                    with capture_internal_errors("crewai.on_event"):
                        if not replaying():  # a checkpoint replay, not a run
                            push(event, source)

                # CrewAI 1.15 dispatches stream chunks inline, on the agent's
                # thread: queued without a lock.
                def on_chunk(source: Any, event: Any) -> None:
                    with capture_internal_errors("crewai.on_chunk"):
                        push_inline(event, source)

                for event_type in _event_classes(events):
                    handler = on_chunk if event_type.__name__ == "LLMStreamChunkEvent" else on_event
                    crewai_event_bus.on(event_type)(handler)
                    self.handlers.append((event_type, handler))

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
        self.assembler = Translator(client, agent_id)
        self.assembler.forced_answer_text = _crewai_text("force_final_answer")
        self.assembler.refused_call_text = _crewai_text("task_repeated_usage")
        self.listener = _get_listener_class()(self.assembler)
        self.policy_hooks = PolicyHooks(client, self)

    def attach(self) -> None:
        """The wrappers that see what events cannot say: the exception
        behind a failure event, a kickoff interrupted from outside."""
        from crewai import Crew

        emit_watch.add(_crewai_events().crewai_event_bus, self.assembler.failures)
        kickoff_watch.add(Crew, self.kickoff_interrupted)

    def detach(self) -> None:
        emit_watch.remove(self.assembler.failures)
        kickoff_watch.remove(self.kickoff_interrupted)

    def kickoff_interrupted(self, crew: Any) -> None:
        # On the interrupted kickoff's thread: what CrewAI emitted before the
        # interruption is translated first, so the cancelled end comes last.
        self.catch_up()
        self.assembler.cancelled(crew)

    def catch_up(self, timeout: float = 5.0) -> None:
        """Translate every event CrewAI emitted so far, on this thread: wait
        for CrewAI's handler pool, then release what the sequencer holds, as
        ``dt.flush()`` does (with the pool idle, every event emitted so far
        has reached the sequencer; holding for a gap would leave the
        policies a call behind)."""
        _crewai_events().crewai_event_bus.flush(timeout=timeout)
        self.listener.sequencer.flush()

    @hookimpl
    def dunetrace_drain(self, client: Dunetrace) -> None:
        # The handlers on CrewAI's pool only queue; the translation runs here,
        # on the drain thread, once per wake for every event since the last.
        self.listener.sequencer.admit()

    @hookimpl
    def dunetrace_flush(self, client: Dunetrace, timeout: float) -> None:
        # crewai 1.15: kickoff() can return before the handler pool ran the
        # crew's last events; wait for them, then release what the
        # sequencer holds, so the run's end is queued before the flush.
        with capture_internal_errors("crewai.flush"):
            _crewai_events().crewai_event_bus.flush(timeout=timeout)
            self.listener.sequencer.flush()

    @hookimpl
    def dunetrace_shutdown(self, client: Dunetrace) -> None:
        uninstrument(client)


def _crewai_text(key: str) -> str | None:
    """One of CrewAI's own messages to the model (crewai 1.15:
    ``force_final_answer``, added to the LLM call it makes once an agent
    reached ``max_iter``; ``task_repeated_usage``, its answer to a tool call
    that repeats the last one), stripped of its trailing blank lines."""
    try:
        from crewai.utilities.i18n import I18N_DEFAULT

        text = I18N_DEFAULT.errors(key)
    except Exception:
        text = None
    if not isinstance(text, str) or not text.strip():
        warn_once(
            f"crewai-text-{key}",
            "dunetrace: CrewAI's %r message was not found; max_iter endings and refused repeated tool calls "
            "are not told apart in this CrewAI version",
            key,
        )
        return None
    return text.strip()


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
        installation.policy_hooks.register()
        installation.attach()
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
            installation.detach()
            installation.policy_hooks.unregister()
            installation.listener.sequencer.close()
            installation.assembler.close()
            if installation.client.plugins.is_registered(installation):
                installation.client.plugins.unregister(installation)


def installed(dt: Dunetrace) -> bool:
    """True while ``dt`` is instrumented."""
    with _lock:
        found = _installed.get(id(dt))
        return found is not None and found.client is dt
