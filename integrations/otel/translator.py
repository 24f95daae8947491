"""GenAI spans into Dunetrace runs, without importing OpenTelemetry.

The span processor hands each span over twice: when it starts (its id, its
parent's id, its name, the attributes it started with) and when it ends (the
same, with every attribute, its times and a way to read its error). This
module keeps, per open span, which run it belongs to, and calls the run API.

* An agent span is a run; an agent span inside another run's span is a child
  run. The run is started lazily, at its first step or its end, so that
  ``run.started`` carries the model, the tools, the system prompt's hash and
  the user input's hash, which emitters often record only on the first model
  span (Pydantic AI does).
* A model span is ``llm.called`` (stamped with the span's start) and
  ``llm.responded`` (its end), both sent when it ends, when its tokens and
  finish reason are known.
* A tool span is ``tool.called`` when it starts, if its name is known by
  then (so a live policy can act before the tool runs), and
  ``tool.responded`` when it ends; failure is the span's error status.
* A retrieval span is ``retrieval.called`` / ``retrieval.responded``.
* A model, tool or retrieval span with no agent span above it joins the
  current ``dt.run(...)``, or else is a run of its own.
* Live ``stop`` policies: once one has stopped a run, the next model or tool
  span of that run raises ``dunetrace.PolicyViolation`` as it starts, before
  the call it wraps is made (``stops_at_span_start``; an adapter whose
  tracer swallows what its processors raise turns it off and acts elsewhere).
  Ends never raise: the call has happened, and the tracer's other
  processors still have to hear of it.

Content attributes (prompts, completions, tool arguments and results,
queries, documents) are scanned for prompt injection and then hashed by the
run API; their text never leaves this module. The user input's evidence goes
in ``run.started``; injection found anywhere else fires a live
``PROMPT_INJECTION_SIGNAL`` on the run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

from dunetrace.injection import evidence as input_evidence
from dunetrace.injection import scan
from dunetrace.live import Signal
from dunetrace.log import warn_once
from dunetrace.model_calls import in_framework_model_call
from dunetrace.run import Run, get_current_run

from . import conventions as c
from .state import OpenSpan, RunState, as_exception, parsed, seconds

if TYPE_CHECKING:
    from dunetrace import Dunetrace

__all__ = ["SpanTranslator"]

#: Reads (exception class name, message) from an ended span, or None when it
#: did not fail. Called only for GenAI spans.
ErrorReader = Callable[[Any], "tuple[str, str] | None"]


class SpanTranslator:
    """Turns the spans of one tracer provider into runs of ``client``.

    ``agent_id`` names root runs (default: the agent span's own agent name);
    a child run is ``<root agent_id>.<its agent name>``. At most
    ``max_open_spans`` spans are tracked at once; past it new spans are
    counted as ``untracked_spans`` and left out."""

    def __init__(
        self,
        client: Dunetrace,
        agent_id: str | None,
        error_of: ErrorReader,
        max_open_spans: int = 100_000,
        *,
        stops_at_span_start: bool = True,
    ) -> None:
        self.client = client
        self.stops_at_span_start = stops_at_span_start
        self.agent_id = agent_id
        self._error_of = error_of
        self._max = max_open_spans
        self._spans: dict[Hashable, OpenSpan] = {}
        self._runs: set[RunState] = set()
        self._runs_lock = threading.Lock()
        self.counts = {"runs": 0, "spans": 0, "malformed_spans": 0, "untracked_spans": 0}

    # -- the two entry points -------------------------------------------------

    def start(
        self, span_id: Hashable, parent_id: Hashable | None, name: str, attributes: Mapping[str, Any], start_ns: Any
    ) -> None:
        owner = self._spans.get(parent_id) if parent_id is not None else None
        kind = c.classify(attributes)
        if owner is None and kind == 0:
            return  # not GenAI and in no run: the common case of other spans
        if owner is not None and (kind == c.LLM or kind == c.TOOL) and self._stopped(owner):
            if self.stops_at_span_start:
                owner.state.run.raise_if_stopped()  # type: ignore[union-attr]
            return  # the adapter refuses the call elsewhere; its span is no step of the run
        self._begin(span_id, owner, kind, name, attributes, start_ns)

    def end(
        self,
        span_id: Hashable,
        parent_id: Hashable | None,
        name: str,
        attributes: Mapping[str, Any],
        start_ns: Any,
        end_ns: Any,
        span: Any,
    ) -> None:
        entry = self._spans.pop(span_id, None)
        if entry is None:
            # Not seen starting: a span whose kind was set after it started,
            # or one started before this processor was added.
            kind = c.classify(attributes)
            if kind == 0:
                return
            owner = self._spans.get(parent_id) if parent_id is not None else None
            if owner is not None and (kind == c.LLM or kind == c.TOOL) and self._stopped(owner):
                return  # a call of a stopped run: its record ends at the stop, and an end never raises
            entry = self._begin(span_id, owner, kind, name, attributes, start_ns, at_end=True)
            if entry is None:
                return
            self._spans.pop(span_id, None)
        state = entry.state
        state.spans.discard(span_id)
        kind = entry.kind
        if kind == 0:
            return
        self.counts["spans"] += 1
        start = seconds(start_ns) or state.stamp.t
        end = seconds(end_ns) or start
        error = self._error_of(span)
        with state.lock:
            if kind == c.AGENT:
                self._agent_end(state, attributes, end, error)
            elif kind in (c.LLM, c.TOOL) and state.run is not None and state.run.stopped and entry.step is None:
                # A call that began before its run was stopped and ends after:
                # the run's record ends at the stop (the run API sends no
                # step once stopped), and an end never raises.
                pass
            elif kind == c.LLM:
                self._llm(state, attributes, start, end, error)
            elif kind == c.TOOL:
                self._tool_end(entry, name, attributes, start, end, error)
            elif kind == c.RETRIEVAL:
                self._retrieval(state, name, attributes, start, end)
            if entry.root and kind != c.AGENT:
                self._finish(state, end, error, None)

    @staticmethod
    def _stopped(owner: OpenSpan) -> bool:
        run = owner.state.run
        return run is not None and run.stopped

    def state_of(self, *span_ids: Hashable) -> RunState | None:
        """The run state the first of ``span_ids`` that is open belongs to
        (for an adapter that looks a run up from the framework's current
        span; its ``parent`` links lead to the runs it is a child of)."""
        for span_id in span_ids:
            entry = self._spans.get(span_id)
            if entry is not None:
                return entry.state
        return None

    def run_of(self, *span_ids: Hashable) -> Run | None:
        """The started run of :meth:`state_of`, or None."""
        state = self.state_of(*span_ids)
        return state.run if state is not None else None

    def open_states(self) -> list[RunState]:
        """The run states open now (a copy, taken under the lock)."""
        with self._runs_lock:
            return list(self._runs)

    def stop_reason(self, span_id: Hashable, reason: str, replace: bool = True) -> bool:
        """The run that span ``span_id`` is open in ends with ``reason`` as
        its exit reason (unless it has one and not ``replace``). False when
        no such span is open."""
        entry = self._spans.get(span_id)
        if entry is None:
            return False
        if replace or entry.state.exit_reason is None:
            entry.state.exit_reason = reason
        return True

    def describe(self, span_id: Hashable, attributes: Mapping[str, Any]) -> None:
        """What ``run.started`` of the run that span ``span_id`` is open in
        will carry (model, tools), and its name when the translator was
        given no ``agent_id`` (for an adapter whose run span is not itself
        described)."""
        entry = self._spans.get(span_id)
        if entry is None or entry.state.run is not None:
            return
        state = entry.state
        state.fill(attributes)
        if state.tools is None:
            state.tools = c.tool_names(attributes)
        name = c.name_of(attributes, c.AGENT_NAME)
        if name and self.agent_id is None and state.parent is None:
            state.agent_id = name

    def close(self) -> None:
        """Finish every run still open as ``abandoned`` (uninstrument,
        shutdown)."""
        with self._runs_lock:
            states = list(self._runs)
        for state in states:
            with state.lock:
                self._finish(state, None, None, "abandoned")
        self._spans.clear()

    @property
    def open_runs(self) -> int:
        return len(self._runs)

    # -- spans ---------------------------------------------------------------

    def _begin(
        self,
        span_id: Hashable,
        owner: OpenSpan | None,
        kind: int,
        name: str,
        attributes: Mapping[str, Any],
        start_ns: Any,
        at_end: bool = False,
    ) -> OpenSpan | None:
        if len(self._spans) >= self._max:
            self.counts["untracked_spans"] += 1
            warn_once(
                "otel-untracked",
                "dunetrace: more than %d GenAI spans open at once; spans past that are left out "
                "(counted as untracked_spans)",
                self._max,
            )
            return None
        start = seconds(start_ns)
        if start is None:
            self.counts["malformed_spans"] += 1
            warn_once("otel-malformed-start", "dunetrace: a span without a valid start time was skipped")
            return None
        state = owner.state if owner is not None else None
        root = False
        if kind == c.AGENT:
            state = self._open_run(name, attributes, start, state)
            root = True
        elif state is None:
            current = get_current_run()
            if current is not None:
                if kind == c.LLM and in_framework_model_call():
                    return None  # a framework integration is reporting this call already
                state = RunState(current.agent_id, None, start, run=current)
            else:
                state = self._open_run(name, attributes, start, None)
                root = True
        entry = OpenSpan(state, kind, root)
        self._spans[span_id] = entry
        state.spans.add(span_id)
        if kind == c.TOOL and not at_end:
            tool = self._tool_name(name, attributes)
            if tool is not None:
                with state.lock:
                    entry.step = self._tool_called(state, tool, attributes, start)
        return entry

    def _open_run(self, name: str, attributes: Mapping[str, Any], start: float, parent: RunState | None) -> RunState:
        agent_name = c.name_of(attributes, c.AGENT_NAME)
        if parent is not None:
            root = parent
            while root.parent is not None:
                root = root.parent
            agent_id = f"{root.agent_id}.{agent_name}" if agent_name else root.agent_id
        else:
            agent_id = self.agent_id or agent_name or (name if isinstance(name, str) and name else "agent")
        state = RunState(agent_id, parent, start)
        state.fill(attributes, parsed(c.first_text(attributes, c.AGENT_INPUT)))
        with self._runs_lock:
            self._runs.add(state)
        self.counts["runs"] += 1
        return state

    # -- runs ----------------------------------------------------------------

    def _run(self, state: RunState, at: float) -> Run:
        """The state's run, started (at ``at`` if it starts now)."""
        run = state.run
        if run is not None:
            if state.owned:
                state.stamp.t = at
            return run
        parent_run_id = None
        if state.parent is not None:
            with state.parent.lock:
                parent_run_id = self._run(state.parent, at).run_id
        run = Run(
            self.client,
            state.agent_id,
            user_input=state.user_input,
            system_prompt=state.system_prompt,
            model=state.model,
            tools=state.tools,
            parent_run_id=parent_run_id,
        )
        state.injection_seen = state.user_input is not None and input_evidence(state.user_input) is not None
        state.user_input = None  # the raw input is not kept past run.started
        run.clock = state.stamp
        state.run = run
        state.stamp.t = min(at, state.stamp.t)
        run.start()
        state.stamp.t = at
        return run

    def _finish(
        self, state: RunState, end: float | None, error: tuple[str, str] | None, exit_reason: str | None
    ) -> None:
        with self._runs_lock:
            self._runs.discard(state)
        for span_id in state.spans:
            self._spans.pop(span_id, None)
        state.spans.clear()
        state.prompt_seen = None
        if not state.owned:
            return
        run = self._run(state, end if end is not None else state.stamp.t)
        if end is not None:
            state.stamp.t = end
        run.finish(as_exception(*error) if error else None, exit_reason)

    def _agent_end(
        self, state: RunState, attributes: Mapping[str, Any], end: float, error: tuple[str, str] | None
    ) -> None:
        state.fill(attributes, parsed(c.first_text(attributes, c.AGENT_INPUT)))
        output = c.first_text(attributes, c.AGENT_OUTPUT)
        self._scan(state, self._run(state, end), output, "agent.output")
        if state.exit_reason is not None:
            error, exit_reason = None, state.exit_reason
        else:
            exit_reason = None if error else ("final_answer" if output is not None else "completed")
        self._finish(state, end, error, exit_reason)

    def _llm(
        self, state: RunState, attributes: Mapping[str, Any], start: float, end: float, error: tuple[str, str] | None
    ) -> None:
        if state.run is None:
            system, user, whole = c.prompt_parts(attributes)
            state.fill(attributes, parsed(user), system)
        else:
            whole = c.prompt_text(attributes) if not state.injection_seen else None
        run = self._run(state, start)
        prompt_tokens = c.count(attributes, c.INPUT_TOKENS)
        step = run.llm_called(c.name_of(attributes, c.MODEL), prompt_tokens)
        if whole is not None:
            seen, state.prompt_seen = state.prompt_seen, whole
            # A prompt that repeats the last one scanned is scanned from
            # where that one ended (its closing bracket included).
            if seen is not None and len(seen) > 1 and whole.startswith(seen[:-1]):
                whole = whole[len(seen) - 1 :]
            self._scan(state, run, whole, "llm.input")
        output = c.output_text(attributes)
        self._scan(state, run, output, "llm.output")
        state.stamp.t = end
        finish = c.finish_reason(attributes) or ("error" if error else None)
        run.llm_responded(
            c.count(attributes, c.OUTPUT_TOKENS),
            (end - start) * 1000.0,
            finish,
            prompt_tokens=prompt_tokens,
            output=output,
            step=step,
        )

    def _tool_name(self, name: str, attributes: Mapping[str, Any]) -> str | None:
        tool = c.name_of(attributes, c.TOOL_NAME)
        if tool is None and isinstance(name, str) and name.startswith("execute_tool "):
            tool = name[13:].strip() or None
        return tool

    def _tool_called(self, state: RunState, tool: str, attributes: Mapping[str, Any], start: float) -> int:
        run = self._run(state, start)
        args = c.first_text(attributes, c.TOOL_ARGS)
        step = run.tool_called(tool, args)
        self._scan(state, run, args, "tool.arguments")
        return step

    def _tool_end(
        self,
        entry: OpenSpan,
        name: str,
        attributes: Mapping[str, Any],
        start: float,
        end: float,
        error: tuple[str, str] | None,
    ) -> None:
        state = entry.state
        tool = self._tool_name(name, attributes) or "unknown"
        if entry.step is None:
            entry.step = self._tool_called(state, tool, attributes, start)
        run = self._run(state, end)
        result = c.first_text(attributes, c.TOOL_RESULT)
        self._scan(state, run, result, "tool.result")
        run.tool_responded(
            tool,
            error is None,
            latency_ms=(end - start) * 1000.0,
            error=f"{error[0]}: {error[1]}" if error else None,
            output=result,
            step=entry.step,
        )

    def _retrieval(self, state: RunState, name: str, attributes: Mapping[str, Any], start: float, end: float) -> None:
        run = self._run(state, start)
        index = c.name_of(attributes, c.INDEX_NAME) or (name if isinstance(name, str) and name else "retriever")
        query = c.first_text(attributes, c.QUERY)
        self._scan(state, run, query, "retrieval.query")
        if not state.injection_seen:
            for key, value in attributes.items():
                if key.startswith("retrieval.documents.") and key.endswith(".document.content"):
                    self._scan(state, run, value if isinstance(value, str) else None, "retrieval.documents")
        step = run.retrieval_called(index, query)
        state.stamp.t = end
        result_count, top_score = c.retrieved(attributes)
        run.retrieval_responded(index, result_count, top_score, (end - start) * 1000.0, step=step)

    def _scan(self, state: RunState, run: Run, text: str | None, field: str) -> None:
        """Prompt injection in content other than the run's input: a live
        signal, once per run."""
        if text is None or state.injection_seen:
            return
        found = scan(text)
        if not found:
            return
        state.injection_seen = True
        run.fire(
            Signal(
                "PROMPT_INJECTION_SIGNAL",
                "CRITICAL",
                0.9,
                run.step_index,
                {
                    "matched_patterns": sorted(found),
                    "matched_pattern_count": len(found),
                    "match_count": sum(found.values()),
                    "fields": [field],
                },
            )
        )
