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

Endings: a crew or agent ends ``final_answer``; ``guardrail`` when a task
guardrail rejected the answer (an agent's answer waits for the verdict);
``max_iterations`` when CrewAI asked for the answer past ``max_iter``;
``cancelled`` when the adapter reports an interrupted kickoff
(:meth:`Translator.cancelled`); errors name the exception class the adapter
noted for the failure event (:class:`~.errors.FailureLog`).

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
from typing import TYPE_CHECKING, Any

from dunetrace.exit_reasons import ABANDONED, CANCELLED, FINAL_ANSWER, GUARDRAIL, MAX_ITERATIONS
from dunetrace.log import capture_internal_errors, warn_once
from dunetrace.open_runs import OpenRuns

from .errors import FailureLog
from .llm_calls import LLMCalls
from .readers import (
    CrewState,
    RunState,
    agent_suffix,
    event_time,
    has_guardrail,
    reported_error,
    stable_args,
    template,
    tool_names,
    version_text,
)
from .tool_calls import ToolCalls

if TYPE_CHECKING:
    from dunetrace import Dunetrace
    from dunetrace.run import Run

__all__ = ["Translator", "agent_suffix"]

#: Crews (top-level trees) tracked at once; past it the oldest is closed as
#: abandoned. Bounds memory when CrewAI never sends a crew's end.
MAX_CREWS = 1_000


class Translator(LLMCalls, ToolCalls):
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
        self._crews: OpenRuns[str, CrewState] = OpenRuns(MAX_CREWS)
        #: (CrewAI agent id, task id) -> the open child run, for events whose
        #: parent scope we never saw (a type we do not subscribe to)
        self._by_agent: dict[tuple[Any, Any], RunState] = {}
        self.stats = {"out_of_order": 0, "late": 0, "unplaced": 0}
        #: the exception classes behind failure events (see errors.py)
        self.failures = FailureLog()
        #: CrewAI's instruction to answer now, sent past ``max_iter``, and its
        #: refusal of a repeated tool call (set by the adapter from CrewAI's
        #: own texts): an LLM call's messages show them
        self.forced_answer_text: str | None = None
        self.refused_call_text: str | None = None
        #: task id -> the agent run whose answer waits for the task's guardrail
        self._awaiting: dict[str, RunState] = {}
        #: CrewAI crew id -> its kickoff's run, for a kickoff interrupted
        #: without a failure event (KeyboardInterrupt, a cancelled task)
        self._by_crew: dict[str, RunState] = {}
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
            "task_completed": self._task_ended,
            "llm_guardrail_completed": self._guardrail_completed,
            "llm_call_started": self._llm_started,
            "llm_call_completed": self._llm_completed,
            "llm_call_failed": self._llm_failed,
            "tool_usage_started": self._tool_started,
            "tool_usage_finished": self._tool_finished,
            "tool_usage_error": self._tool_error,
            "tool_selection_error": self._tool_refused,
            "tool_validate_input_error": self._tool_refused,
            "tool_failure_detected": self._tool_refused,
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
            for crew in self._crews.drain():
                if crew.root is not None:
                    self._finish(crew.root, None, ABANDONED)
            self._owner.clear()
            self._by_agent.clear()
            self._awaiting.clear()
            self._by_crew.clear()

    def cancelled(self, crew: Any) -> None:
        """The kickoff of ``crew`` (a CrewAI ``Crew``) was interrupted
        without a failure event of CrewAI's (``KeyboardInterrupt``, a
        cancelled ``akickoff`` task): its calls still open are answered as
        failed and its runs end ``cancelled``. Call it once every event
        emitted so far has been handled."""
        with capture_internal_errors("crewai.cancelled"), self._lock:
            state = self._by_crew.get(str(getattr(crew, "id", "")))
            if state is None or state.done:
                return
            state.crew.cancelled = True
            self._finish(state, None, CANCELLED)
            self._drop_crew(state)

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
            system_prompt=version_text(agents, with_setup=True) or None,
            tools=sorted(set(tools)),
            parent_run_id=parent.run.run_id if parent is not None and not parent.done else None,
        )
        crew = parent.crew if parent is not None and not parent.done else None
        if crew is None:
            crew = CrewState()
            crew.key = str(getattr(event, "event_id", id(event)))
            self._abandon(self._crews.add(crew.key, crew))
        state = RunState(run, crew)
        if crew.root is None:
            crew.root = state
        elif parent is not None:
            parent.children.append(state)
        self._check_order(crew, event)
        self._remember(getattr(event, "event_id", None), state)
        crew_id = getattr(crew_obj, "id", None)
        if crew_id is not None:
            self._by_crew[str(crew_id)] = state
        run.start()

    def _crew_completed(self, event: Any, source: Any) -> None:
        state = self._owner.get(getattr(event, "started_event_id", None))  # type: ignore[arg-type]
        if state is None or state.done:
            self.stats["unplaced" if state is None else "late"] += 1
            return
        self._check_order(state.crew, event)
        self._finish(state, None, FINAL_ANSWER)
        self._drop_crew(state)

    def _crew_failed(self, event: Any, source: Any) -> None:
        state = self._owner.get(getattr(event, "started_event_id", None))  # type: ignore[arg-type]
        if state is None or state.done:
            self.stats["unplaced" if state is None else "late"] += 1
            return
        self._check_order(state.crew, event)
        if state.crew.guardrail_rejected:
            # A task guardrail rejected the last answer and CrewAI gave up
            # (it raises a plain Exception): a guardrail ending, not an error.
            self._finish(state, None, GUARDRAIL)
        else:
            self._finish(state, self._error(event, state.crew.error_type), None)
        self._drop_crew(state)

    def _task_failed(self, event: Any, source: Any) -> None:
        state = self._owner.get(getattr(event, "parent_event_id", None))  # type: ignore[arg-type]
        self._task_ended(event, source)
        error_type = getattr(event, "error_type", None)
        name = getattr(error_type, "__name__", None)
        if state is not None and isinstance(name, str):
            state.crew.error_type = name

    def _task_ended(self, event: Any, source: Any) -> None:
        # An answer still waiting for a guardrail verdict gets none.
        task_id = getattr(getattr(event, "task", None), "id", None)
        waiting = self._awaiting.pop(str(task_id), None) if task_id is not None else None
        if waiting is not None:
            self._settle(waiting)

    def _error(self, event: Any, type_name: str | None = None) -> Exception:
        """The failure of ``event`` as an exception of its real class when
        the emit watch saw it, else of ``type_name`` (else CrewAIError);
        the message is only ever hashed."""
        failure = self.failures.pop(getattr(event, "event_id", None))
        if failure is not None:
            type_name = failure.error_type
        return reported_error(getattr(event, "error", None), type_name)

    def _drop_crew(self, state: RunState) -> None:
        crew = state.crew
        for key in [key for key, value in self._by_crew.items() if value is state]:
            del self._by_crew[key]
        if crew.root is not state:
            return  # a nested crew ends with its tree's root
        for event_id in crew.event_ids:
            self._owner.pop(event_id, None)
        if crew.key is not None:
            self._crews.pop(crew.key, crew)

    def _abandon(self, evicted: list[CrewState]) -> None:
        for crew in evicted:
            warn_once(
                "crewai-evict",
                "dunetrace: more than %d CrewAI kickoffs open at once; the oldest is closed as abandoned",
                self._crews.max_runs,
            )
            if crew.root is not None:
                self._finish(crew.root, None, ABANDONED)
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
        if state is None:
            return
        task = getattr(event, "task", None)
        if has_guardrail(task):
            # CrewAI 1.15 checks the answer after this event; its verdict
            # (llm_guardrail_completed) says how this run ended.
            task_id = str(getattr(task, "id", ""))
            earlier = self._awaiting.pop(task_id, None)
            if earlier is not None:
                self._settle(earlier)
            state.awaiting_guardrail = task_id
            self._awaiting[task_id] = state
            return
        self._settle(state)

    def _settle(self, state: RunState, rejected: bool = False) -> None:
        """End an agent's run that answered: rejected by a guardrail, past
        its iteration limit, or a final answer."""
        state.awaiting_guardrail = None
        reason = GUARDRAIL if rejected else MAX_ITERATIONS if state.forced_answer else FINAL_ANSWER
        self._finish(state, None, reason)

    def _guardrail_completed(self, event: Any, source: Any) -> None:
        task_id = getattr(event, "task_id", None)
        if task_id is None:
            task_id = getattr(getattr(event, "from_task", None), "id", None)
        state = self._awaiting.pop(str(task_id), None)
        rejected = getattr(event, "success", None) is False
        if state is not None:
            state.crew.guardrail_rejected = rejected
            self._settle(state, rejected)
        else:
            crew_state = self._state_for(event)
            if crew_state is not None:
                crew_state.crew.guardrail_rejected = rejected

    def _agent_error(self, event: Any, source: Any) -> None:
        state = self._agent_ended(event)
        if state is not None:
            self._finish(state, self._error(event), None)

    # -- tools (their ends and refusals: tool_calls.py) --------------------------

    def _tool_started(self, event: Any, source: Any) -> None:
        """A CrewAI tool event becomes ``tool.called`` here."""
        state = self._state_for(event)
        if state is None:
            return
        name = getattr(event, "tool_name", None)
        args = stable_args(getattr(event, "tool_args", None))
        # CrewAI hands args as a dict or as a JSON string; the hasher parses a
        # JSON string first, so equal args hash equal either way.
        step = state.run.tool_called(name, args)  # type: ignore[arg-type]
        state.last_tool = (name, args)  # type: ignore[assignment]
        state.tools[str(getattr(event, "event_id", ""))] = (step, name, args, getattr(event, "timestamp", None))  # type: ignore[assignment]
        self._remember(getattr(event, "event_id", None), state)

    # -- ending runs --------------------------------------------------------------

    def _finish(self, state: RunState, error: BaseException | None, exit_reason: str | None) -> None:
        """End a run last: its open children and calls first."""
        if state.done:
            return
        cancelled = exit_reason == CANCELLED
        for child in state.children:
            if child.done:
                continue
            if child.awaiting_guardrail is not None:
                self._awaiting.pop(child.awaiting_guardrail, None)
                self._settle(child)
            else:
                self._finish(child, error, (CANCELLED if cancelled else ABANDONED) if error is None else None)
        run = state.run
        # Calls the run's end cut short are answered as failed; a
        # cancellation says so in their error's class.
        cut = reported_error("the run ended before the call returned", "CancelledError" if cancelled else None)
        for step, name, _, _ in state.tools.values():
            run.tool_responded(
                name, False, error=cut if cancelled else "the run ended before the tool returned", step=step
            )
        state.tools.clear()
        for step, _ in state.llm_calls.values():
            run.llm_responded(finish_reason="error", step=step, error=cut if cancelled else None)
        state.llm_calls.clear()
        state.done = True
        for key in [key for key, value in self._by_agent.items() if value is state]:
            del self._by_agent[key]
        if error is None and exit_reason == FINAL_ANSWER:
            run.final_answer()
            run.finish()
        else:
            run.finish(error=error, exit_reason=exit_reason)
