"""The readers for workflows, tools and agent teams, and the table of
paused runs, with plain fakes and with whatever hypothesis makes of them:
they never raise, whatever LlamaIndex (or a user's subclass) hands over."""

from __future__ import annotations

import inspect
from types import SimpleNamespace as NS
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from workflows import Context, Workflow, step
from workflows.errors import WorkflowRuntimeError
from workflows.events import StartEvent, StopEvent

from dunetrace.api_errors import api_error_signal
from dunetrace.integrations.llamaindex import readers as extract
from dunetrace.integrations.llamaindex.pauses import PausedRuns

values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        | st.builds(lambda kw: NS(**{f"f{i}": v for i, v in enumerate(kw)}), st.lists(inner, max_size=3))
        | st.builds(
            lambda kw: NS(**kw),
            st.dictionaries(
                st.sampled_from(
                    [
                        "user_msg",
                        "_data",
                        "arguments",
                        "tool_output",
                        "is_error",
                        "tool_name",
                        "tool_kwargs",
                        "agents",
                        "system_prompt",
                        "llm",
                        "root_agent",
                        "is_running",
                        "init_state",
                        "start_event",
                        "content",
                    ]
                ),
                inner,
                max_size=5,
            ),
        )
    ),
    max_leaves=12,
)


@given(values)
def test_the_workflow_readers_never_raise(value: Any) -> None:
    extract.start_event_input(value)
    extract.resumes_paused_run(value)
    extract.runs_in_own_task(value)
    extract.unknown_tool_call(value)
    assert extract.is_iteration_limit(value) is False
    extract.agent_configuration(value)
    extract.agent_model(value)
    extract.user_input(value)
    extract.tool_args(value)
    assert api_error_signal(value) is None  # not an exception


class Flow(Workflow):
    @step
    async def only(self, ev: StartEvent) -> StopEvent:
        return StopEvent(result=None)


def test_a_start_event_is_its_message_or_its_fields() -> None:
    assert extract.start_event_input(NS(user_msg="hello")) == "hello"
    assert extract.start_event_input(StartEvent(topic="tides", depth=2)) == {"topic": "tides", "depth": 2}
    assert extract.start_event_input(StartEvent()) is None


def test_an_injected_context_is_left_out_of_tool_arguments() -> None:
    def acall(*args: Any, **kwargs: Any) -> None: ...

    ctx = Context(Flow())
    bound = inspect.signature(acall).bind(city="paris", ctx=ctx)
    assert extract.tool_args(bound) == {"city": "paris"}
    # Something else that happens to be called Context is an argument like any other.
    Context2 = type("Context", (), {})
    other = Context2()
    assert extract.tool_args(inspect.signature(acall).bind(city="x", ctx=other)) == {"city": "x", "ctx": other}


def test_an_unknown_tool_and_the_iteration_limit() -> None:
    result = type("ToolCallResult", (), {})()
    result.tool_name, result.tool_kwargs = "teleport", {"to": "mars"}
    result.tool_output = NS(is_error=True, content="Tool teleport not found.")
    assert extract.unknown_tool_call(result) == ("teleport", {"to": "mars"}, "Tool teleport not found.")
    result.tool_output = NS(is_error=False, content="ok")
    assert extract.unknown_tool_call(result) is None
    assert extract.is_iteration_limit(WorkflowRuntimeError("Max iterations of 3 reached! ..."))
    assert not extract.is_iteration_limit(WorkflowRuntimeError("something else"))
    assert not extract.is_iteration_limit(RuntimeError("Max iterations of 3 reached!"))


def test_a_team_configuration_changes_with_any_agent() -> None:
    def team(prompt: str, model: str) -> Any:
        root = NS(name="root", system_prompt="Answer.", llm=NS(model="m-root"), tools=[])
        helper = NS(name="helper", system_prompt=prompt, llm=NS(model=model), tools=[NS(metadata=NS(name="t"))])
        return NS(agents={"root": root, "helper": helper}, root_agent="root", llm=None)

    base = extract.agent_configuration(team("Help.", "m1"))
    assert base == extract.agent_configuration(team("Help.", "m1"))
    assert base != extract.agent_configuration(team("Help more.", "m1"))
    assert base != extract.agent_configuration(team("Help.", "m2"))
    assert extract.agent_model(team("Help.", "m1")) == "m-root"
    assert extract.agent_configuration(NS(system_prompt="solo")) == "solo"


def test_paused_runs_resume_latest_first_per_workflow_and_stay_bounded() -> None:
    paused = PausedRuns()
    paused.paused("A", "a1")
    paused.paused("B", "b1")
    paused.paused("A", "a2")
    assert paused.resume("A") == "a2"
    assert paused.resume("A") == "a1"
    assert paused.resume("A") is None
    assert paused.resume("B") == "b1" and len(paused) == 0
    paused.max_paused = 3
    for i in range(10):
        paused.paused("A", f"r{i}")
    assert len(paused) == 3 and paused.resume("A") == "r9"
