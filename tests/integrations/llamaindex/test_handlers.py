"""The handlers called directly. LlamaIndex swallows whatever a handler
raises (llama-index-instrumentation 0.6 wraps each call in ``except
BaseException: pass``), so an end-to-end run cannot show a handler bug: these
tests call the handlers themselves, in strict mode, where an internal error
is re-raised."""

from __future__ import annotations

import inspect
import logging
from typing import Any, ClassVar

import pytest

from dunetrace import Dunetrace, log
from dunetrace.integrations.llamaindex import DunetraceEventHandler, DunetraceSpanHandler

from .recorded import by_run, types, well_formed


class LLMChatStartEvent:  # named like the real event: the translator dispatches on the class name
    def __init__(self, span_id: Any, **fields: Any) -> None:
        self.span_id = span_id
        self.__dict__.update(fields)


class LLMChatEndEvent(LLMChatStartEvent):
    pass


class RetrievalEndEvent(LLMChatStartEvent):
    pass


class RetrievalStartEvent(LLMChatStartEvent):
    pass


class ExceptionEvent(LLMChatStartEvent):
    pass


class Agent:
    """A stand-in for a Workflow; the classifier below calls it a run."""

    name = "fake"
    tools: ClassVar[list[Any]] = ["not a tool", None, 3]
    llm = object()


def bound(**arguments: Any) -> inspect.BoundArguments:
    def f(**kwargs: Any) -> None: ...

    return inspect.signature(f).bind(**arguments)


@pytest.fixture
def handlers(dt: Dunetrace) -> tuple[Any, Any]:
    span_handler = DunetraceSpanHandler(dt, agent_id="direct")
    # The real classifier knows LlamaIndex's classes; here an ``Agent`` is a run.
    span_handler.translator._classify = lambda instance, method: 2 if isinstance(instance, Agent) else 0
    return span_handler, DunetraceEventHandler(span_handler)


GARBAGE: list[Any] = [
    None,
    0,
    -1,
    3.5,
    "",
    "x",
    b"bytes",
    object(),
    [],
    {},
    {"a": object()},
    float("nan"),
    Exception("e"),
]


def test_garbage_never_raises_and_leaves_nothing_behind(handlers: tuple[Any, Any], received: Any) -> None:
    span_handler, event_handler = handlers
    for junk in GARBAGE:
        for other in (None, junk, "Agent.run-1"):
            assert (
                span_handler.new_span(id_=junk, bound_args=junk, instance=junk, parent_span_id=other, tags=junk) is None
            )
            assert span_handler.prepare_to_exit_span(id_=junk, bound_args=junk, instance=junk, result=other) is None
            assert span_handler.prepare_to_drop_span(id_=junk, bound_args=junk, instance=junk, err=other) is None
        assert event_handler.handle(junk) is None
        for cls in (LLMChatStartEvent, LLMChatEndEvent, RetrievalStartEvent, RetrievalEndEvent, ExceptionEvent):
            assert event_handler.handle(cls(junk, response=junk, messages=junk, model_dict=junk, nodes=junk)) is None
    assert received() == []
    translator = span_handler.translator
    assert translator._spans == {} and len(translator._runs) == 0 and translator._llm == {}


def test_garbage_inside_a_run_still_gives_a_well_formed_run(handlers: tuple[Any, Any], received: Any) -> None:
    span_handler, event_handler = handlers
    span_handler.new_span(id_="Agent.run-1", bound_args=bound(user_msg=object()), instance=Agent(), parent_span_id=None)
    span_handler.new_span(id_="LLM.achat-2", bound_args=None, instance=object(), parent_span_id="Agent.run-1")
    for junk in GARBAGE:
        event_handler.handle(LLMChatStartEvent("LLM.achat-2", messages=junk, model_dict=junk))
        event_handler.handle(LLMChatEndEvent("LLM.achat-2", response=junk))
    span_handler.new_span(id_="Retriever.retrieve-3", bound_args=None, instance=object(), parent_span_id="Agent.run-1")
    event_handler.handle(RetrievalStartEvent("Retriever.retrieve-3", str_or_query_bundle=object()))
    event_handler.handle(RetrievalEndEvent("Retriever.retrieve-3", nodes=[object(), None, "x"]))
    span_handler.prepare_to_exit_span(id_="Retriever.retrieve-3", bound_args=None, result=None)
    span_handler.prepare_to_exit_span(id_="LLM.achat-2", bound_args=None, result=GARBAGE)
    span_handler.prepare_to_exit_span(id_="Agent.run-1", bound_args=None, result=GARBAGE)

    (events,) = by_run(received()).values()
    well_formed(events)
    assert types(events).count("llm.called") == len(GARBAGE)
    assert events[0]["payload"]["tools"] == []  # the agent's tools were not tools
    retrieval = next(e for e in events if e["event_type"] == "retrieval.responded")["payload"]
    assert retrieval["result_count"] == 3 and retrieval["top_score"] is None


def test_a_dropped_llm_span_or_exception_event_closes_the_call(handlers: tuple[Any, Any], received: Any) -> None:
    span_handler, event_handler = handlers
    span_handler.new_span(id_="Agent.run-1", bound_args=None, instance=Agent(), parent_span_id=None)
    for n in (2, 3):
        span_handler.new_span(id_=f"LLM.achat-{n}", bound_args=None, instance=object(), parent_span_id="Agent.run-1")
        event_handler.handle(LLMChatStartEvent(f"LLM.achat-{n}", messages=[], model_dict={"model": "m"}))
    marks = [call.model_call for call in span_handler.translator._llm.values()]
    assert len(marks) == 2 and all(mark.open for mark in marks)
    span_handler.prepare_to_drop_span(id_="LLM.achat-2", bound_args=None, err=TimeoutError("t"))
    event_handler.handle(ExceptionEvent("LLM.achat-3", exception=ValueError("v")))
    assert not span_handler.translator._llm and not any(mark.open for mark in marks)
    span_handler.prepare_to_drop_span(id_="Agent.run-1", bound_args=None, err=None)
    (events,) = by_run(received()).values()
    well_formed(events)
    assert [e["payload"].get("finish_reason") for e in events if e["event_type"] == "llm.responded"] == ["error"] * 2
    assert events[-1]["event_type"] == "run.errored"


def test_an_internal_error_is_logged_once_and_never_raised(
    handlers: tuple[Any, Any], caplog: pytest.LogCaptureFixture
) -> None:
    span_handler, event_handler = handlers
    log.strict = False

    def broken(*args: Any) -> None:
        raise ZeroDivisionError("bug")

    translator = span_handler.translator
    translator.span_entered = translator.span_exited = translator.span_dropped = translator.handle = broken
    with caplog.at_level(logging.ERROR, logger="dunetrace"):
        for _ in range(3):
            assert span_handler.new_span(id_="a", bound_args=None) is None
            assert span_handler.prepare_to_exit_span(id_="a", bound_args=None) is None
            assert span_handler.prepare_to_drop_span(id_="a", bound_args=None) is None
            assert event_handler.handle(LLMChatStartEvent("a")) is None
    assert caplog.text.count("internal error in llamaindex.new_span") == 1
    assert caplog.text.count("internal error in llamaindex.handle") == 1


def test_strict_mode_would_surface_a_bug(handlers: tuple[Any, Any]) -> None:
    # The guard is what stands between a bug and LlamaIndex's silent except.
    span_handler, _ = handlers

    def broken(*args: Any) -> None:
        raise ZeroDivisionError("bug")

    span_handler.translator.span_entered = broken
    with pytest.raises(ZeroDivisionError):
        span_handler.new_span(id_="a", bound_args=None)


def test_spans_runs_and_calls_are_bounded(handlers: tuple[Any, Any], received: Any) -> None:
    span_handler, event_handler = handlers
    translator = span_handler.translator
    # 5 runs of 11 spans fit under max_spans: what bounds the spans here is
    # that an abandoned run takes its spans with it.
    translator.max_spans, translator.max_runs, translator.max_calls = 60, 5, 10
    for r in range(20):  # runs whose spans never end (tasks cancelled without a drop)
        span_handler.new_span(id_=f"Agent.run-{r}", bound_args=None, instance=Agent(), parent_span_id=None)
        for s in range(10):
            span_id = f"LLM.achat-{r}-{s}"
            span_handler.new_span(id_=span_id, bound_args=None, instance=object(), parent_span_id=f"Agent.run-{r}")
            event_handler.handle(LLMChatStartEvent(span_id, messages=[], model_dict={}))
        assert len(translator._spans) <= 55 and len(translator._runs) <= 5 and len(translator._llm) <= 10
        live = list(translator._runs.values())
        assert all(any(span.state is state for state in live) for span in translator._spans.values())
    events = received()
    assert len(by_run(events)) == 20
    # The runs pushed out were finished, not left open.
    finished = [e for e in events if e["event_type"] == "run.completed"]
    assert len(finished) == 15 and {e["payload"]["exit_reason"] for e in finished} == {"abandoned"}
    span_handler.close()
    assert translator._spans == {} and len(translator._runs) == 0
    assert len([e for e in received() if e["event_type"] == "run.completed"]) == 20


def test_a_run_that_never_ends_is_finished_after_the_ttl(handlers: tuple[Any, Any], received: Any) -> None:
    span_handler, _ = handlers
    translator = span_handler.translator
    span_handler.new_span(id_="Agent.run-1", bound_args=None, instance=Agent(), parent_span_id=None)
    translator.run_ttl = 0.0
    span_handler.new_span(id_="Agent.run-2", bound_args=None, instance=Agent(), parent_span_id=None)
    (first,) = [events for events in by_run(received()).values() if len(events) == 2]
    assert first[-1]["payload"]["exit_reason"] == "abandoned"


def test_spans_that_never_end_are_bounded(handlers: tuple[Any, Any]) -> None:
    span_handler, _ = handlers
    translator = span_handler.translator
    translator.max_spans = 50
    span_handler.new_span(id_="Agent.run-1", bound_args=None, instance=Agent(), parent_span_id=None)
    for s in range(500):
        span_handler.new_span(id_=f"Step.x-{s}", bound_args=None, instance=object(), parent_span_id="Agent.run-1")
        assert len(translator._spans) <= 50
    assert "Step.x-499" in translator._spans and "Agent.run-1" in translator._spans  # the run's top span stays
