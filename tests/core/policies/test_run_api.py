"""Policies on the run API, checked on what a real HTTP server received:
each condition, each action, POLICY_TRIGGERED shipped once per policy, and
PolicyViolation the only exception that ever reaches the agent."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest

from dunetrace import Dunetrace, PolicyViolation
from dunetrace import log as dunetrace_log
from dunetrace.live import Signal


class LoopWatcher:
    """Stands in for the detector library: TOOL_LOOP on the third identical
    tool call (same name and arguments hash)."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, Any, Any], int] = {}

    def observe(self, run: Any, event_type: str, step: int, payload: dict[str, Any]) -> None:
        if event_type == "tool.called":
            key = (run.run_id, payload.get("tool_name"), payload.get("args_hash"))
            self.seen[key] = self.seen.get(key, 0) + 1
            if self.seen[key] == 3:
                run.fire(Signal("TOOL_LOOP", "HIGH", 0.9, step, {"tool": payload.get("tool_name"), "count": 3}))


def policy_signals(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        e["payload"]
        for e in events
        if e["event_type"] == "external.signal" and e["payload"]["signal_name"] == "POLICY_TRIGGERED"
    ]


def loop(run: Any, calls: int) -> int:
    done = 0
    for _ in range(calls):
        step = run.llm_called("gpt-4o", prompt_tokens=100)
        run.llm_responded(completion_tokens=10, step=step)
        step = run.tool_called("search", {"q": "same"})
        run.tool_responded("search", True, output_length=3, step=step)
        done += 1
    return done


def test_stop_after_a_set_number_of_tool_calls_ends_the_run_errored(dt: Dunetrace, ingest) -> None:
    dt.add_policy("cap-search", when={"tool_calls": 3, "tool": "search"}, then="stop")
    seen: list[Signal] = []
    dt.on_signal(seen.append)
    done = 0
    with pytest.raises(PolicyViolation) as err, dt.run("looper") as run:
        for _ in range(10):
            run.llm_called("gpt-4o")
            run.tool_called("search", {"q": "same"})
            run.tool_responded("search", True, step=run.step_index)
            done += 1
    assert done == 3  # the fourth model call raised
    assert err.value.policy == "cap-search" and err.value.run_id == run.run_id
    assert "tool_calls of search >= 3" in str(err.value)
    assert [s.type for s in seen] == ["POLICY_TRIGGERED"] and seen[0].run is run
    assert dt.flush(5)
    events = ingest.events
    assert events[-1]["event_type"] == "run.errored" and events[-1]["payload"]["error_type"] == "PolicyViolation"
    assert sum(e["event_type"] == "tool.called" for e in events) == 3
    assert sum(e["event_type"] == "llm.called" for e in events) == 3
    (payload,) = policy_signals(events)
    assert payload["source"] == "dunetrace" and payload["live"] is True and payload["severity"] == "HIGH"
    assert payload["evidence"] == {
        "policy": "cap-search",
        "action": "stop",
        "trigger": "tool_calls",
        "condition": "tool_calls of search >= 3",
        "observed": 3,
    }


def test_without_a_stop_policy_the_run_methods_never_raise(dt: Dunetrace) -> None:
    dt.add_policy("just-log", when={"tool_calls": 1}, then="log")
    with dt.run("calm") as run:
        for _ in range(5):
            run.llm_called("m")
            run.tool_called("t", {"a": 1})
        assert run._violation is None
    assert [s.type for s in run.signals] == ["POLICY_TRIGGERED"]


def test_several_policies_each_ship_their_own_trigger(dt: Dunetrace, ingest) -> None:
    dt.add_policy("log-2", when={"tool_calls": 2}, then="log")
    dt.add_policy("cheaper", when={"steps": {">": 3}}, then={"switch_model": "gpt-4o-mini"})
    dt.add_policy("nudge", when={"tokens": 200}, then={"inject_prompt": "SECRET-NUDGE stop repeating"})
    with dt.run("many", model="gpt-4o") as run:
        loop(run, 3)
        assert run.model_override == "gpt-4o-mini"
        assert run.pop_prompt_addition() == "SECRET-NUDGE stop repeating"
        assert run.pop_prompt_addition() is None
    assert dt.flush(5)
    triggered = policy_signals(ingest.events)
    assert [p["evidence"]["policy"] for p in triggered] == ["nudge", "log-2", "cheaper"]
    assert [p["evidence"]["action"] for p in triggered] == ["inject_prompt", "log", "switch_model"]
    assert triggered[2]["evidence"]["model"] == "gpt-4o-mini" and triggered[2]["evidence"]["observed"] == 4
    assert triggered[0]["evidence"]["observed"] == 220
    assert b"SECRET-NUDGE" not in ingest.raw()  # an injected message's text never leaves the process
    assert ingest.events[-1]["event_type"] == "run.completed"


def test_a_signal_policy_stops_the_run_at_the_next_call(dt: Dunetrace, ingest) -> None:
    dt.add_watcher(LoopWatcher())
    dt.add_policy("no-loops", when={"signal": "TOOL_LOOP"}, then="stop")
    calls = 0
    with pytest.raises(PolicyViolation, match="no-loops"), dt.run("looper") as run:
        for _ in range(10):
            run.tool_called("search", {"q": "same"})
            calls += 1
    assert calls == 3
    assert [s.type for s in run.signals] == ["TOOL_LOOP", "POLICY_TRIGGERED"]
    assert dt.flush(5)
    assert ingest.events[-1]["payload"]["error_type"] == "PolicyViolation"


def test_elapsed_seconds_is_checked_at_each_event(dt: Dunetrace) -> None:
    dt.add_policy("slow", when={"elapsed_seconds": 0.2}, then="stop")
    with pytest.raises(PolicyViolation, match=r"elapsed_seconds >= 0\.2"), dt.run("slow") as run:
        run.tool_called("t")
        time.sleep(0.25)
        run.tool_responded("t", True)  # the check at this event triggers
        run.llm_called("m")


def test_policies_apply_per_run(dt: Dunetrace) -> None:
    dt.add_policy("two", when={"tool_calls": 2}, then="stop")
    with dt.run("a") as a, dt.run("b") as b:
        a.tool_called("x")
        b.tool_called("x")
        a.tool_called("x")
        with pytest.raises(PolicyViolation):
            a.tool_called("x")
        b.llm_called("m")  # b made one call: untouched
    assert a.signals and not b.signals


def test_a_raising_user_callback_never_reaches_the_agent(dt: Dunetrace, caplog: Any) -> None:
    dunetrace_log.strict = False

    def broken(signal: Signal) -> None:
        raise RuntimeError("user bug")

    dt.on_signal(broken)
    dt.add_policy("log", when={"tool_calls": 1}, then="log")
    with caplog.at_level(logging.WARNING, logger="dunetrace"), dt.run("a") as run:
        run.tool_called("x")
        run.tool_called("x")
    assert "user bug" in caplog.text


def test_the_guard_lets_policy_violation_through_and_nothing_else() -> None:
    dunetrace_log.strict = False
    with dunetrace_log.capture_internal_errors("somewhere"):
        raise KeyError("our bug")  # swallowed
    with pytest.raises(PolicyViolation), dunetrace_log.capture_internal_errors("somewhere"):
        raise PolicyViolation("p", "steps >= 1")


def test_a_policy_file_is_loaded_from_the_environment(tmp_path: Any, monkeypatch: Any) -> None:
    path = tmp_path / "policies.toml"
    path.write_text('[[policies]]\nname = "cap"\nwhen = { tool_calls = 2 }\nthen = "stop"\n')
    monkeypatch.setenv("DUNETRACE_POLICIES", str(path))
    dt = Dunetrace(export="none")
    try:
        assert [p.name for p in dt.policies] == ["cap"]
        with pytest.raises(PolicyViolation), dt.run("a") as run:
            for _ in range(3):
                run.tool_called("x")
    finally:
        dt.shutdown()


def test_dt_tool_is_stopped_before_the_function_runs(dt: Dunetrace) -> None:
    ran: list[str] = []

    @dt.tool
    def search(query: str) -> str:
        ran.append(query)
        return "nothing"

    dt.add_policy("two", when={"tool_calls": 2}, then="stop")
    with pytest.raises(PolicyViolation), dt.run("a"):
        for i in range(5):
            search(f"q{i}")
    assert ran == ["q0", "q1"]


def test_a_reported_signal_triggers_a_signal_policy(dt: Dunetrace) -> None:
    dt.add_policy("slow-down", when={"signal": "rate_limit"}, then={"switch_model": "smaller"})
    with dt.run("a") as run:
        run.llm_called("big")
        assert run.model_override is None
        run.external_signal("rate_limit", source="openai", http_status=429)
        assert run.model_override == "smaller"


def test_policy_violation_crosses_processes() -> None:
    import pickle

    again = pickle.loads(pickle.dumps(PolicyViolation("cap", "steps >= 3", "run-1")))
    assert (again.policy, again.reason, again.run_id, str(again)) == (
        "cap",
        "steps >= 3",
        "run-1",
        "dunetrace policy 'cap' stopped the run: steps >= 3",
    )
