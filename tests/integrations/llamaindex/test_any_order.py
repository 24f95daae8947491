"""Whatever order LlamaIndex's callbacks come in, and however a run ends
(its span exits, is dropped with an error or a cancellation, is cancelled by
``cancel_run()``, or the handler is detached), every run on the wire starts
with ``run.started``, ends with one terminal event, and has every call
answered before it. Driven with hypothesis through the real handlers."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dunetrace import Dunetrace
from dunetrace.integrations.llamaindex import DunetraceEventHandler, DunetraceSpanHandler

from .recorded import by_run, well_formed


class LLMChatStartEvent:  # named like the real events: the translator dispatches on the class name
    def __init__(self, span_id: str, **fields: Any) -> None:
        self.span_id = span_id
        self.__dict__.update(fields)


class LLMChatEndEvent(LLMChatStartEvent):
    pass


class SpanCancelledEvent(LLMChatStartEvent):
    pass


class WaitingForEvent(Exception):
    pass


class Agent:
    name = "fake"
    tools: ClassVar[list[Any]] = []
    llm = None


class Tool:
    class metadata:
        name = "lookup"


ERRORS = {"cancelled": asyncio.CancelledError, "failed": ValueError, "waiting": WaitingForEvent}

steps = st.lists(
    st.tuples(
        st.sampled_from(["tool", "llm", "exit", "drop", "cancel_step"]),
        st.integers(0, 3),
        st.sampled_from(sorted(ERRORS)),
    ),
    max_size=12,
)
endings = st.tuples(
    st.sampled_from(["exit", "drop", "cancel_run", "detach"]),
    st.sampled_from(sorted(ERRORS)),
    st.booleans(),  # the calls still open end after the run's span (a stream read late)
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps, endings)
def test_every_path_gives_a_well_formed_run(
    dt: Dunetrace, received: Any, script: list[tuple[str, int, str]], ending: tuple[str, str, bool]
) -> None:
    span_handler = DunetraceSpanHandler(dt, agent_id="ordered")
    classes = {Agent: 2, Tool: 1}
    span_handler.translator._classify = lambda instance, method: classes.get(type(instance), 0)
    event_handler = DunetraceEventHandler(span_handler)
    before = len(received())
    root = "Agent.run-root"
    span_handler.new_span(id_=root, bound_args=None, instance=Agent(), parent_span_id=None)
    open_spans: dict[int, str] = {}
    for n, (action, slot, error) in enumerate(script):
        span_id = open_spans.get(slot)
        if action == "tool" and span_id is None:
            open_spans[slot] = f"FunctionTool.acall-{n}"
            span_handler.new_span(id_=open_spans[slot], bound_args=None, instance=Tool(), parent_span_id=root)
        elif action == "llm" and span_id is None:
            open_spans[slot] = f"LLM.achat-{n}"
            span_handler.new_span(id_=open_spans[slot], bound_args=None, instance=object(), parent_span_id=root)
            event_handler.handle(LLMChatStartEvent(open_spans[slot], model_dict={"model": "m"}))
        elif action == "exit" and span_id is not None:
            if span_id.startswith("LLM"):
                event_handler.handle(LLMChatEndEvent(span_id, response=None))
            span_handler.prepare_to_exit_span(id_=span_id, bound_args=None, result=None)
            del open_spans[slot]
        elif action == "drop" and span_id is not None:
            span_handler.prepare_to_drop_span(id_=span_id, bound_args=None, err=ERRORS[error]())
            del open_spans[slot]
        elif action == "cancel_step" and span_id is not None:
            event_handler.handle(SpanCancelledEvent(span_id, reason="step cancelled"))
    how, error, late = ending
    if how == "exit":
        span_handler.prepare_to_exit_span(id_=root, bound_args=None, result=None)
    elif how == "drop":
        span_handler.prepare_to_drop_span(id_=root, bound_args=None, err=ERRORS[error]())
    elif how == "cancel_run":
        event_handler.handle(SpanCancelledEvent(root, reason="workflow cancelled by user"))
        span_handler.prepare_to_exit_span(id_=root, bound_args=None, result=None)
    if late:
        for span_id in open_spans.values():
            if span_id.startswith("LLM"):
                event_handler.handle(LLMChatEndEvent(span_id, response=None))
            span_handler.prepare_to_exit_span(id_=span_id, bound_args=None, result=None)
    span_handler.close()  # detaching ends whatever is still open
    (events,) = by_run(received()[before:]).values()
    well_formed(events)
    translator = span_handler.translator
    assert translator._spans == {} and len(translator._runs) == 0 and translator._llm == {}
