"""The run API as a user writes it, checked on what a real HTTP server received."""

from __future__ import annotations

import asyncio
import contextvars
import threading

import pytest

from dunetrace import Dunetrace, get_current_run


def kinds(events):
    return [(e["event_type"], e["step_index"]) for e in events]


def test_run_emits_started_steps_and_completed(dt: Dunetrace, ingest) -> None:
    with dt.run("agent-a", user_input="hi", model="gpt-x", tools=["search", "calc"]) as run:
        assert get_current_run() is run
        step = run.llm_called("gpt-x", prompt_tokens=12)
        run.llm_responded(completion_tokens=3, latency_ms=4.5, finish_reason="tool_calls", output="abc", step=step)
        t = run.tool_called("search", {"q": "x"})
        run.tool_responded("search", True, output_length=7, latency_ms=1.0, step=t)
        run.external_signal("rate_limit", source="openai", http_status=429)
        r = run.retrieval_called("docs", query="what")
        run.retrieval_responded("docs", 2, top_score=0.8, latency_ms=2.0, step=r)
        run.final_answer()
    assert get_current_run() is None
    assert dt.flush(5)
    events = ingest.events
    assert kinds(events) == [
        ("run.started", 0),
        ("llm.called", 1),
        ("llm.responded", 1),
        ("tool.called", 2),
        ("tool.responded", 2),
        ("external.signal", 2),
        ("retrieval.called", 3),
        ("retrieval.responded", 3),
        ("run.completed", 3),
    ]
    started, completed = events[0], events[-1]
    assert started["payload"]["tools"] == ["search", "calc"] and started["payload"]["model"] == "gpt-x"
    assert len(started["payload"]["input_hash"]) == 64
    assert completed["payload"] == {"exit_reason": "final_answer", "total_steps": 3}
    assert events[2]["payload"]["finish_reason"] == "tool_calls"
    assert events[2]["payload"]["output_length"] == 3
    assert events[5]["payload"] == {"http_status": 429, "signal_name": "rate_limit", "source": "openai"}
    assert events[7]["payload"] == {"index_name": "docs", "result_count": 2, "top_score": 0.8, "latency_ms": 2.0}
    assert {e["run_id"] for e in events} == {run.run_id}
    assert {e["agent_version"] for e in events} == {run.agent_version}
    assert all(e["parent_run_id"] is None for e in events)
    assert len({e["event_id"] for e in events}) == len(events)
    timestamps = [e["timestamp"] for e in events]
    assert timestamps == sorted(timestamps)


def test_agent_version_changes_with_configuration(dt: Dunetrace) -> None:
    a = dt.run("a", system_prompt="p", model="m", tools=["x", "y"])
    b = dt.run("a", system_prompt="p", model="m", tools=["y", "x"])
    c = dt.run("a", system_prompt="p2", model="m", tools=["x", "y"])
    d = dt.run("a", system_prompt="p", model="m2", tools=["x", "y"])
    assert a.agent_version == b.agent_version
    assert len({a.agent_version, c.agent_version, d.agent_version}) == 3


def test_exception_is_run_errored_and_reraised_unchanged(dt: Dunetrace, ingest) -> None:
    error = KeyError("secret message")
    with pytest.raises(KeyError) as caught, dt.run("agent-a") as run:
        run.tool_called("t")
        raise error
    assert caught.value is error
    dt.flush(5)
    last = ingest.events[-1]
    assert last["event_type"] == "run.errored"
    assert last["payload"]["error_type"] == "KeyError"
    assert len(last["payload"]["error_hash"]) == 64
    assert last["payload"]["total_steps"] == 1


async def test_async_with_and_children_across_gather(dt: Dunetrace, ingest) -> None:
    async def child(i: int) -> str:
        await asyncio.sleep(0.01 * (i % 3))
        async with dt.run(f"child-{i}") as run:
            await asyncio.sleep(0)
            assert get_current_run() is run
            return run.run_id

    async with dt.run("parent") as parent:
        await asyncio.sleep(0)
        assert get_current_run() is parent
        child_ids = await asyncio.gather(*(child(i) for i in range(5)))
        assert get_current_run() is parent
    dt.flush(5)
    by_run = {}
    for e in ingest.events:
        by_run.setdefault(e["run_id"], []).append(e)
    assert set(by_run) == {parent.run_id, *child_ids}
    for run_id in child_ids:
        assert {e["parent_run_id"] for e in by_run[run_id]} == {parent.run_id}
        assert [e["event_type"] for e in by_run[run_id]] == ["run.started", "run.completed"]


def test_child_in_thread_started_with_copied_context(dt: Dunetrace, ingest) -> None:
    seen = {}

    def work() -> None:
        seen["outer"] = get_current_run()
        with dt.run("child") as child:
            seen["child"] = child

    with dt.run("parent") as parent:
        ctx = contextvars.copy_context()
        thread = threading.Thread(target=ctx.run, args=(work,))
        thread.start()
        thread.join()
        plain = threading.Thread(target=lambda: seen.setdefault("plain", get_current_run()))
        plain.start()
        plain.join()
    assert seen["outer"] is parent
    assert seen["child"].parent_run_id == parent.run_id
    assert seen["plain"] is None  # a thread without the copied context is not inside the run


def test_explicit_parent_run_id_wins(dt: Dunetrace) -> None:
    with dt.run("parent"), dt.run("child", parent_run_id="elsewhere") as child:
        assert child.parent_run_id == "elsewhere"


def test_tool_wrapper_sync_async_named_and_outside_a_run(dt: Dunetrace, ingest) -> None:
    @dt.tool
    def add(a: int, b: int = 0) -> int:
        return a + b

    @dt.tool(name="fetch")
    async def fetch_page(url: str) -> str:
        await asyncio.sleep(0)
        return "page"

    @dt.tool
    def broken(x: int) -> None:
        raise ValueError("boom")

    assert add(1, 2) == 3  # outside a run: plain call, no event
    assert add.__name__ == "add"
    with dt.run("a"):
        assert add(1, b=2) == 3
        assert add(a=1, b=2) == 3
        assert asyncio.run(fetch_page("u")) == "page"
        with pytest.raises(ValueError, match="boom"):
            broken(1)
    dt.flush(5)
    events = ingest.events
    tool_events = [e for e in events if e["event_type"].startswith("tool.")]
    assert [(e["event_type"], e["payload"]["tool_name"], e["step_index"]) for e in tool_events] == [
        ("tool.called", "add", 1),
        ("tool.responded", "add", 1),
        ("tool.called", "add", 2),
        ("tool.responded", "add", 2),
        ("tool.called", "fetch", 3),
        ("tool.responded", "fetch", 3),
        ("tool.called", "broken", 4),
        ("tool.responded", "broken", 4),
    ]
    # add(1, b=2) and add(a=1, b=2) are the same call: same hash
    assert tool_events[0]["payload"]["args_hash"] == tool_events[2]["payload"]["args_hash"]
    assert tool_events[1]["payload"]["success"] is True and tool_events[1]["payload"]["output_length"] == 1
    assert tool_events[7]["payload"]["success"] is False and len(tool_events[7]["payload"]["error_hash"]) == 64
    assert all(e["payload"]["latency_ms"] >= 0 for e in tool_events if e["event_type"] == "tool.responded")
    assert len([e for e in events if e["event_type"] == "run.started"]) == 1


def test_trace_sync_and_async(dt: Dunetrace, ingest) -> None:
    @dt.trace(agent_id="support-bot", model="m")
    def answer(question: str) -> str:
        return "42"

    @dt.trace
    async def async_agent(question: str) -> str:
        return "ok"

    @dt.trace
    def failing(question: str) -> None:
        raise RuntimeError("nope")

    assert answer("what?") == "42"
    assert asyncio.run(async_agent("q")) == "ok"
    with pytest.raises(RuntimeError):
        failing("q")
    dt.flush(5)
    runs = {}
    for e in ingest.events:
        runs.setdefault(e["agent_id"], []).append(e)
    assert [e["event_type"] for e in runs["support-bot"]] == ["run.started", "run.completed"]
    assert runs["support-bot"][0]["payload"]["model"] == "m"
    assert runs["support-bot"][0]["payload"]["input_hash"] == dt.hasher.value("what?")
    assert runs["support-bot"][1]["payload"]["exit_reason"] == "final_answer"
    assert runs["async_agent"][1]["payload"]["exit_reason"] == "final_answer"
    assert runs["failing"][1]["event_type"] == "run.errored"


def test_run_arguments_are_checked_at_the_boundary(dt: Dunetrace) -> None:
    with pytest.raises(ValueError, match="agent_id"):
        dt.run("")
    with pytest.raises(TypeError, match="list of tool names"):
        dt.run("a", tools="search")
    with pytest.raises(ValueError, match="non-empty string"):
        dt.tool(name="")
    with pytest.raises(TypeError, match="wraps a function"):
        dt.trace(42)  # type: ignore[call-overload]


def test_bad_values_in_run_methods_never_raise(dt: Dunetrace, ingest, caplog) -> None:
    with dt.run("a") as run:
        s = run.llm_called(None, prompt_tokens="many")  # type: ignore[arg-type]
        run.llm_responded(completion_tokens=-1, latency_ms="slow", output=object(), step=s)  # type: ignore[arg-type]
        run.tool_called(None)  # type: ignore[arg-type]
        run.tool_responded("", "yes", output_length=float("nan"))  # type: ignore[arg-type]
        run.retrieval_responded("idx", None, top_score=float("nan"))  # type: ignore[arg-type]
    dt.flush(5)
    events = ingest.events
    assert [e["event_type"] for e in events][-1] == "run.completed"
    assert events[1]["payload"] == {}
    assert "completion_tokens" not in events[2]["payload"] and "latency_ms" not in events[2]["payload"]
    assert events[3]["payload"]["tool_name"] == "unknown"
    assert "must be" in caplog.text


def test_finish_counts_once_and_steps_stay_with_their_call(dt: Dunetrace, ingest) -> None:
    run = dt.run("a").start()
    first = run.llm_called("m")
    second = run.llm_called("m")
    run.llm_responded(1, step=first)
    run.llm_responded(2)  # without step: the last llm call
    run.finish()
    run.finish(RuntimeError("late"))
    dt.flush(5)
    responded = [e for e in ingest.events if e["event_type"] == "llm.responded"]
    assert [(e["step_index"], e["payload"]["completion_tokens"]) for e in responded] == [(first, 1), (second, 2)]
    assert [e["event_type"] for e in ingest.events].count("run.completed") == 1
    assert "run.errored" not in [e["event_type"] for e in ingest.events]


def test_disabled_client_sends_nothing(ingest) -> None:
    client = Dunetrace(endpoint=ingest.url, enabled=False)
    with client.run("a") as run:
        run.tool_called("t")
    client.mark_deploy("a", "v1")
    assert client.flush(1)
    client.shutdown(1)
    assert ingest.requests == [] and client.stats()["dropped_total"] == 0
