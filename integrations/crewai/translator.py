"""CrewAI events in, Dunetrace run calls out. Imports no framework.

The assembler reads CrewAI events by duck typing: their ``type`` string
(``"llm_call_started"``, ...), their ids (``event_id``, ``parent_event_id``,
``started_event_id``, ``call_id``) and a few documented fields. It is tested
with plain fakes as well as with a real crew.

Tree: a crew kickoff is a run; each agent's execution of a task is a child
run (``parent_run_id``), found by following ``parent_event_id`` from an
event to the nearest scope we already placed. An agent that runs inside a
tool of another agent (hierarchical delegation) is a child of that agent's
run; a crew kicked off inside a tool is a child of the agent that called it.

Order: events must be fed in CrewAI's emission order; the adapter puts
them in that order with a :class:`~.sequencer.Sequencer` (CrewAI's sync
handlers run on a thread pool and see events out of order). The assembler
still checks ``emission_sequence`` per crew and counts regressions
(``out_of_order``). Whatever the order, a run's terminal event is always its
last: calls still open when their run ends are closed first (a tool as
failed, an LLM call with ``finish_reason="error"``), and events that arrive
for a finished run are counted and dropped.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from dunetrace.log import capture_internal_errors, warn_once

from .readers import (
    CrewState,
    RunState,
    agent_suffix,
    elapsed_ms,
    event_time,
    reported_error,
    template,
    token_count,
    tool_names,
    version_text,
)

if TYPE_CHECKING:
    from dunetrace import Dunetrace
    from dunetrace.run import Run

__all__ = ["Translator", "agent_suffix"]

#: Crews (top-level trees) tracked at once; past it the oldest is closed as
#: abandoned. Bounds memory when CrewAI never sends a crew's end.
MAX_CREWS = 1_000


class Translator:
    """Turns CrewAI events into calls on Dunetrace runs.

    ``handle(event, source)`` is safe to call from several threads; one
    assembler serves every crew of a client, keeping their runs apart by
    CrewAI's own event ids.
    """

    def __init__(self, client: Dunetrace, agent_id: str) -> None:
        self._client = client
        self.agent_id = agent_id
        self._lock = threading.RLock()
        #: CrewAI event id -> the run state that event belongs to
        self._owner: dict[str, RunState] = {}
        #: top-level kickoff event id -> crew state, oldest first
        self._crews: OrderedDict[str, CrewState] = OrderedDict()
        #: (CrewAI agent id, task id) -> the open child run, for events whose
        #: parent scope we never saw (a type we do not subscribe to)
        self._by_agent: dict[tuple[Any, Any], RunState] = {}
        self.stats = {"out_of_order": 0, "late": 0, "unplaced": 0}
        #: CrewAI's time of the event being handled: the runs' clock, since
        #: events are translated after the fact, on the drain thread
        self._event_time: float | None = None
        self._dispatch = {
            "crew_kickoff_started": self._crew_started,
            "crew_kickoff_completed": self._crew_completed,
            "crew_kickoff_failed": self._crew_failed,
            "agent_execution_started": self._agent_started,
            "agent_execution_completed": self._agent_completed,
            "agent_execution_error": self._agent_error,
            "task_failed": self._task_failed,
            "llm_call_started": self._llm_started,
            "llm_call_completed": self._llm_completed,
            "llm_call_failed": self._llm_failed,
            "tool_usage_started": self._tool_started,
            "tool_usage_finished": self._tool_finished,
            "tool_usage_error": self._tool_error,
        }

    # -- entry point ------------------------------------------------------------

    def handle(self, event: Any, source: Any = None) -> None:
        with capture_internal_errors("crewai.handle"):
            kind = getattr(event, "type", None)
            if not isinstance(kind, str):
                return
            with self._lock:
                self._event_time = event_time(event)
                try:
                    method = self._dispatch.get(kind)
                    if method is not None:
                        method(event, source)
                    else:
                        self._place_scope(event)
                finally:
                    self._event_time = None

    def _clock(self) -> float:
        at = self._event_time
        return at if at is not None else time.time()

    def _new_run(self, agent_id: str, **options: Any) -> Run:
        run = self._client.run(agent_id, **options)
        run.clock = self._clock
        return run

    def run_state_of(self, agent: Any, task: Any) -> RunState | None:
        """The open run of ``agent`` executing ``task`` (a CrewAI hook's
        context has both)."""
        with self._lock:
            state = self._by_agent.get((str(getattr(agent, "id", "")), str(getattr(task, "id", ""))))
            return state if state is not None and not state.done else None

    def open_runs(self) -> int:
        with self._lock:
            return len(self._crews)

    def close(self) -> None:
        """End every open run (as abandoned) and forget all state."""
        with capture_internal_errors("crewai.close"), self._lock:
            for crew in list(self._crews.values()):
                if crew.root is not None:
                    self._finish(crew.root, None, "abandoned")
            self._crews.clear()
            self._owner.clear()
            self._by_agent.clear()

    # -- placing events in the tree ---------------------------------------------

    def _state_for(self, event: Any) -> RunState | None:
        state = self._owner.get(getattr(event, "parent_event_id", None))  # type: ignore[arg-type]
        if state is None:
            state = self._by_agent.get((getattr(event, "agent_id", None), getattr(event, "task_id", None)))
        if state is None:
            agent = getattr(event, "agent_id", None)
            if agent is not None:
                for (agent_key, _), candidate in reversed(self._by_agent.items()):
                    if agent_key == agent:
                        state = candidate
                        break
        if state is None:
            self.stats["unplaced"] += 1
            return None
        if state.done:
            self.stats["late"] += 1
            warn_once(
                "crewai-late-event",
                "dunetrace: a CrewAI event arrived after its run had ended and was dropped "
                "(was the listener installed on sync handlers, or a crew resumed from a checkpoint?)",
            )
            return None
        self._check_order(state.crew, event)
        return state

    def _remember(self, event_id: Any, state: RunState) -> None:
        if isinstance(event_id, str):
            self._owner[event_id] = state
            state.crew.event_ids.add(event_id)

    def _forget(self, event_id: Any) -> None:
        state = self._owner.pop(event_id, None)
        if state is not None:
            state.crew.event_ids.discard(event_id)

    def _check_order(self, crew: CrewState, event: Any) -> None:
        seq = getattr(event, "emission_sequence", None)
        if isinstance(seq, int):
            if seq < crew.last_sequence:
                self.stats["out_of_order"] += 1
            else:
                crew.last_sequence = seq

    def _place_scope(self, event: Any) -> None:
        # Scopes we do not translate (task, the agent executor's flow, memory,
        # reasoning, ...): remember which run they belong to, so the events
        # inside them find it.
        parent = self._owner.get(getattr(event, "parent_event_id", None))  # type: ignore[arg-type]
        if parent is not None and not parent.done:
            self._remember(getattr(event, "event_id", None), parent)

    # -- crews --------------------------------------------------------------------

    def _crew_started(self, event: Any, source: Any) -> None:
        parent = self._owner.get(getattr(event, "parent_event_id", None))  # type: ignore[arg-type]
        crew_obj = getattr(event, "crew", None) or source
        agents = getattr(crew_obj, "agents", None) or ()
        tools: list[str] = []
        for agent in agents:
            tools.extend(tool_names(getattr(agent, "tools", None)))
        run = self._new_run(
            self.agent_id,
            user_input=getattr(event, "inputs", None),
            # the agents' definitions, hashed: a changed crew is a new version
            system_prompt=version_text(agents) or None,
            tools=sorted(set(tools)),
            parent_run_id=parent.run.run_id if parent is not None and not parent.done else None,
        )
        crew = parent.crew if parent is not None and not parent.done else None
        if crew is None:
            crew = CrewState()
            self._crews[str(getattr(event, "event_id", id(event)))] = crew
            self._evict()
        state = RunState(run, crew)
        if crew.root is None:
            crew.root = state
        elif parent is not None:
            parent.children.append(state)
        self._check_order(crew, event)
        self._remember(getattr(event, "event_id", None), state)
        run.start()

    def _crew_completed(self, event: Any, source: Any) -> None:
        state = self._owner.get(getattr(event, "started_event_id", None))  # type: ignore[arg-type]
        if state is None or state.done:
            self.stats["unplaced" if state is None else "late"] += 1
            return
        self._check_order(state.crew, event)
        self._finish(state, None, "final_answer")
        self._drop_crew(state)

    def _crew_failed(self, event: Any, source: Any) -> None:
        state = self._owner.get(getattr(event, "started_event_id", None))  # type: ignore[arg-type]
        if state is None or state.done:
            self.stats["unplaced" if state is None else "late"] += 1
            return
        self._check_order(state.crew, event)
        self._finish(state, reported_error(getattr(event, "error", None), state.crew.error_type), None)
        self._drop_crew(state)

    def _task_failed(self, event: Any, source: Any) -> None:
        state = self._owner.get(getattr(event, "parent_event_id", None))  # type: ignore[arg-type]
        error_type = getattr(event, "error_type", None)
        name = getattr(error_type, "__name__", None)
        if state is not None and isinstance(name, str):
            state.crew.error_type = name

    def _drop_crew(self, state: RunState) -> None:
        crew = state.crew
        if crew.root is not state:
            return  # a nested crew ends with its tree's root
        for event_id in crew.event_ids:
            self._owner.pop(event_id, None)
        for key in [key for key, value in self._crews.items() if value is crew]:
            del self._crews[key]

    def _evict(self) -> None:
        while len(self._crews) > MAX_CREWS:
            _, crew = self._crews.popitem(last=False)
            warn_once(
                "crewai-evict",
                "dunetrace: more than %d CrewAI kickoffs open at once; the oldest is closed as abandoned",
                MAX_CREWS,
            )
            if crew.root is not None:
                self._finish(crew.root, None, "abandoned")
            for event_id in crew.event_ids:
                self._owner.pop(event_id, None)

    # -- agents -------------------------------------------------------------------

    def _agent_started(self, event: Any, source: Any) -> None:
        parent = self._state_for(event)
        if parent is None:
            return
        agent = getattr(event, "agent", None)
        task = getattr(event, "task", None)
        role = template(agent, "role")
        llm = getattr(agent, "llm", None)
        model = getattr(llm, "model", None) if llm is not None else None
        tools = getattr(event, "tools", None)
        if tools is None:
            tools = getattr(agent, "tools", None)
        run = self._new_run(
            f"{self.agent_id}.{agent_suffix(role)}",
            # The task prompt and the agent's goal/backstory are hashed, never
            # sent: the first as the input, the rest as the version.
            user_input=getattr(event, "task_prompt", None),
            system_prompt=version_text([agent]),
            model=model if isinstance(model, str) else None,
            tools=tool_names(tools),
            parent_run_id=parent.run.run_id,
        )
        state = RunState(run, parent.crew)
        parent.children.append(state)
        self._remember(getattr(event, "event_id", None), state)
        self._by_agent[(str(getattr(agent, "id", "")), str(getattr(task, "id", "")))] = state
        run.start()
        # A task's own name (never its description, which is a prompt).
        task_name = getattr(task, "name", None)
        if isinstance(task_name, str) and task_name and task_name != getattr(task, "description", None):
            run.external_signal("crewai.task", source="crewai", task_name=task_name[:128])

    def _agent_ended(self, event: Any) -> RunState | None:
        state = self._owner.get(getattr(event, "started_event_id", None))  # type: ignore[arg-type]
        if state is None:
            agent, task = getattr(event, "agent", None), getattr(event, "task", None)
            state = self._by_agent.get((str(getattr(agent, "id", "")), str(getattr(task, "id", ""))))
        if state is None or state.done:
            self.stats["unplaced" if state is None else "late"] += 1
            return None
        self._check_order(state.crew, event)
        return state

    def _agent_completed(self, event: Any, source: Any) -> None:
        state = self._agent_ended(event)
        if state is not None:
            self._finish(state, None, "final_answer")

    def _agent_error(self, event: Any, source: Any) -> None:
        state = self._agent_ended(event)
        if state is not None:
            self._finish(state, reported_error(getattr(event, "error", None), None), None)

    # -- LLM calls ----------------------------------------------------------------

    def _llm_started(self, event: Any, source: Any) -> None:
        state = self._state_for(event)
        if state is None:
            return
        run = state.run
        step = run.llm_called(getattr(event, "model", None))
        call_id = getattr(event, "call_id", None) or getattr(event, "event_id", None)
        state.llm_calls[str(call_id)] = (step, getattr(event, "timestamp", None))

    def _llm_call(self, event: Any) -> tuple[RunState, int, Any] | None:
        state = self._state_for(event)
        if state is None:
            return None
        call = state.llm_calls.pop(str(getattr(event, "call_id", None)), None)
        if call is None:
            call = state.llm_calls.pop(str(getattr(event, "started_event_id", None)), None)
        if call is None:
            warn_once("crewai-llm-unpaired", "dunetrace: a CrewAI LLM call ended that was never seen starting")
            return None
        return state, call[0], call[1]

    def _llm_completed(self, event: Any, source: Any) -> None:
        found = self._llm_call(event)
        if found is None:
            return
        state, step, started = found
        usage = getattr(event, "usage", None)
        response = getattr(event, "response", None)
        finish_reason = getattr(event, "finish_reason", None)
        if not isinstance(finish_reason, str) or not finish_reason:
            # Custom BaseLLMs rarely report one; CrewAI sets call_type
            # TOOL_CALL (or hands back a list of tool calls) for tool use.
            call_type = getattr(getattr(event, "call_type", None), "value", None)
            finish_reason = "tool_calls" if call_type == "tool_call" or isinstance(response, list) else "stop"
        state.run.llm_responded(
            token_count(usage, "completion_tokens", "output_tokens"),
            elapsed_ms(started, getattr(event, "timestamp", None)),
            finish_reason,
            prompt_tokens=token_count(usage, "prompt_tokens", "input_tokens"),
            output=response if response is not None else "",
            step=step,
        )

    def _llm_failed(self, event: Any, source: Any) -> None:
        found = self._llm_call(event)
        if found is None:
            return
        state, step, started = found
        state.run.llm_responded(
            latency_ms=elapsed_ms(started, getattr(event, "timestamp", None)), finish_reason="error", step=step
        )

    # -- tools --------------------------------------------------------------------

    def _tool_started(self, event: Any, source: Any) -> None:
        state = self._state_for(event)
        if state is None:
            return
        name = getattr(event, "tool_name", None)
        args = getattr(event, "tool_args", None)
        # CrewAI hands args as a dict or as a JSON string; the hasher parses a
        # JSON string first, so equal args hash equal either way.
        step = state.run.tool_called(name, args)
        state.tools[str(getattr(event, "event_id", ""))] = (step, name, args, getattr(event, "timestamp", None))
        self._remember(getattr(event, "event_id", None), state)

    def _tool_call(self, event: Any) -> tuple[RunState, int, str, Any] | None:
        started_id = getattr(event, "started_event_id", None)
        state = self._owner.get(started_id)  # type: ignore[arg-type]
        # A tool's scope only matters while it runs (an agent it delegates to
        # hangs under it); forget it so a long crew's map stays small.
        self._forget(started_id)
        if state is None:
            state = self._state_for(event)
        if state is None or state.done:
            return None
        call = state.tools.pop(str(getattr(event, "started_event_id", None)), None)
        if call is None:
            # CrewAI 1.15 retries a failing tool and reports each failure,
            # some without a started event of their own: each one is a call.
            name = getattr(event, "tool_name", None)
            step = state.run.tool_called(name, getattr(event, "tool_args", None))
            return state, step, name, getattr(event, "timestamp", None)
        return state, call[0], call[1], call[3]

    def _tool_finished(self, event: Any, source: Any) -> None:
        found = self._tool_call(event)
        if found is None:
            return
        state, step, name, started = found
        latency = elapsed_ms(getattr(event, "started_at", None), getattr(event, "finished_at", None))
        if latency is None:
            latency = elapsed_ms(started, getattr(event, "timestamp", None))
        failure = getattr(event, "failure", None)
        state.run.tool_responded(
            name,
            failure is None,
            latency_ms=latency,
            error=str(getattr(failure, "reason", failure)) if failure is not None else None,
            output=getattr(event, "output", None),
            step=step,
            from_cache=getattr(event, "from_cache", None) is True,
        )

    def _tool_error(self, event: Any, source: Any) -> None:
        found = self._tool_call(event)
        if found is None:
            return
        state, step, name, started = found
        error = getattr(event, "error", None)
        state.run.tool_responded(
            name,
            False,
            latency_ms=elapsed_ms(started, getattr(event, "timestamp", None)),
            error=error if isinstance(error, BaseException) else str(error),
            step=step,
        )

    # -- ending runs --------------------------------------------------------------

    def _finish(self, state: RunState, error: BaseException | None, exit_reason: str | None) -> None:
        """End a run last: its open children and calls first."""
        if state.done:
            return
        for child in state.children:
            if not child.done:
                self._finish(child, error, "abandoned" if error is None else None)
        run = state.run
        for step, name, _, _ in state.tools.values():
            run.tool_responded(name, False, error="the run ended before the tool returned", step=step)
        state.tools.clear()
        for step, _ in state.llm_calls.values():
            run.llm_responded(finish_reason="error", step=step)
        state.llm_calls.clear()
        state.done = True
        for key in [key for key, value in self._by_agent.items() if value is state]:
            del self._by_agent[key]
        if error is None and exit_reason == "final_answer":
            run.final_answer()
            run.finish()
        else:
            run.finish(error=error, exit_reason=exit_reason)
