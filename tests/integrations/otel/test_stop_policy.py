"""A ``stop`` policy through the span receiver: the stopped run's next model
or tool span raises PolicyViolation as it starts (before the call it wraps),
and a span that was open when the stop came ends quietly, reaching the
user's own exporter."""

from __future__ import annotations

from typing import Any

import pytest

from dunetrace import Dunetrace, PolicyViolation

from .conftest import Traced

AGENT = {"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "helper"}
CHAT = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m1"}


def _tool(name: str) -> dict[str, Any]:
    return {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name, "gen_ai.tool.call.arguments": "{}"}


def test_the_next_call_after_a_stop_is_refused_and_an_open_one_ends_quietly(
    dt: Dunetrace, traced: Traced, received: Any
) -> None:
    dt.add_policy("two-tools", when={"tool_calls": 2}, then="stop")
    t = traced.tracer
    reached: list[str] = []
    with (
        pytest.raises(PolicyViolation, match="two-tools"),
        t.start_as_current_span("invoke_agent helper", attributes=AGENT),
    ):
        with t.start_as_current_span("execute_tool a", attributes=_tool("a")):
            pass
        # The stop comes while the model span is open: its end must not raise.
        with (
            t.start_as_current_span("chat m1", attributes=CHAT),
            t.start_as_current_span("execute_tool b", attributes=_tool("b")),
        ):
            pass
        reached.append("after the open model span")
        with t.start_as_current_span("execute_tool c", attributes=_tool("c")):
            raise AssertionError("the tool after the stop ran")
    assert reached == ["after the open model span"]  # the refusal came at the next start
    exported = [span.name for span in traced.exporter.get_finished_spans()]
    assert exported == ["execute_tool a", "execute_tool b", "chat m1", "invoke_agent helper"]
    events = received()
    assert [e["payload"]["tool_name"] for e in events if e["event_type"] == "tool.called"] == ["a", "b"]
    assert sum(e["event_type"] == "tool.responded" for e in events) == 2
    assert not [e for e in events if e["event_type"] == "llm.called"]  # ended after the stop: not a step
    assert events[-1]["event_type"] == "run.errored"
    assert events[-1]["payload"]["error_type"] == "PolicyViolation"


def test_without_a_policy_the_same_spans_are_all_steps(traced: Traced, received: Any) -> None:
    t = traced.tracer
    with t.start_as_current_span("invoke_agent helper", attributes=AGENT):
        for name in ("a", "b", "c"):
            with t.start_as_current_span(f"execute_tool {name}", attributes=_tool(name)):
                pass
    events = received()
    assert [e["payload"]["tool_name"] for e in events if e["event_type"] == "tool.called"] == ["a", "b", "c"]
    assert events[-1]["event_type"] == "run.completed"
