"""A run's order on the wire, whoever drives it: ``run.started`` first even
when an event comes before anyone started the run, the terminal event last,
and ``Run.before_end`` callbacks (an integration answering the calls it
holds open) between them, whoever ends the run."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dunetrace import Dunetrace

ACTIONS = ["llm", "tool", "retrieval", "signal", "embedding", "fire"]


def _act(run: Any, action: str) -> None:
    if action == "llm":
        run.llm_responded(1, 2.0, "stop", step=run.llm_called("m"))
    elif action == "tool":
        run.tool_responded("t", True, step=run.tool_called("t", {"a": 1}))
    elif action == "retrieval":
        run.retrieval_responded("docs", 1, 0.5, 1.0, step=run.retrieval_called("docs", "q"))
    elif action == "signal":
        run.external_signal("SOMETHING", source="test")
    elif action == "embedding":
        run.embedding("e", 2, 1.0)
    else:
        from dunetrace.live import Signal

        run.fire(Signal("USER_SIGNAL", "LOW", 0.5, run.step_index, {}))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    actions=st.lists(st.sampled_from(ACTIONS), max_size=8),
    callbacks=st.integers(0, 3),
    ended_by=st.sampled_from(["finish", "error", "with", "shutdown"]),
)
def test_started_first_terminal_last_and_before_end_between(
    actions: list[str], callbacks: int, ended_by: str, ingest: Any
) -> None:
    before = len(ingest.events)
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    calls: list[int] = []
    run = client.run("agent", user_input="hi")

    def answer_open_call(n: int) -> None:
        calls.append(n)
        run.tool_responded("held", False, step=held)

    if ended_by == "with":
        with run:
            for action in actions:
                _act(run, action)
            held = run.tool_called("held")
            for n in range(callbacks):
                run.before_end(("integration", n), lambda n=n: answer_open_call(n))
    else:
        for action in actions:  # never started explicitly: the first event starts it
            _act(run, action)
        held = run.tool_called("held")
        for n in range(callbacks):
            run.before_end(("integration", n), lambda n=n: answer_open_call(n))
        run.before_end("forgotten", lambda: calls.append(-1))
        run.before_end("forgotten", None)
        if ended_by == "finish":
            run.finish()
        elif ended_by == "error":
            run.finish(ValueError("x"))
    assert client.shutdown(timeout=5)
    run.finish()  # a second end changes nothing
    assert calls == list(range(callbacks))
    events = [e for e in ingest.events[before:] if e["run_id"] == run.run_id]
    assert events[0]["event_type"] == "run.started"
    assert events[-1]["event_type"] in ("run.completed", "run.errored")
    assert sum(e["event_type"] in ("run.completed", "run.errored") for e in events) == 1
    assert sum(e["event_type"] == "run.started" for e in events) == 1
    answered = [e for e in events if e["event_type"] == "tool.responded" and e["payload"]["tool_name"] == "held"]
    assert len(answered) == callbacks


def test_a_before_end_callback_that_raises_does_not_stop_the_end(dt: Dunetrace, ingest: Any) -> None:
    from dunetrace import log

    log.strict = False  # the guard logs instead of raising, as it does for users
    run = dt.run("agent").start()
    seen: list[str] = []

    def broken() -> None:
        raise RuntimeError("a bug in an integration")

    run.before_end("broken", broken)
    run.before_end("fine", lambda: seen.append("fine"))
    run.finish()
    assert seen == ["fine"]
    assert dt.flush(5)
    assert [e["event_type"] for e in ingest.events] == ["run.started", "run.completed"]


def test_before_end_is_ignored_once_the_run_ended(dt: Dunetrace) -> None:
    run = dt.run("agent")
    run.finish()
    called: list[int] = []
    run.before_end("late", lambda: called.append(1))
    run.finish()
    assert called == []


def test_before_end_from_many_threads(dt: Dunetrace, ingest: Any) -> None:
    run = dt.run("agent").start()
    called: list[int] = []
    lock = threading.Lock()

    def register(n: int) -> None:
        def callback() -> None:
            with lock:
                called.append(n)

        run.before_end(n, callback)
        if n % 2:
            run.before_end(n, None)

    threads = [threading.Thread(target=register, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.finish()
    assert sorted(called) == list(range(0, 20, 2))


@pytest.mark.parametrize("key", [None, "", 0, ("a", 1)])
def test_any_hashable_key(dt: Dunetrace, key: Any) -> None:
    run = dt.run("agent")
    called: list[Any] = []
    run.before_end(key, lambda: called.append(key))
    run.finish()
    assert called == [key]
