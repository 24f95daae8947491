"""TOOL_LOOP, TOOL_THRASHING, RETRY_STORM, CASCADING_TOOL_FAILURE: at, just
under and just over their thresholds."""

from __future__ import annotations

from dunetrace.collector.detectors import DetectorConfig

from .runs import RunBuilder, config, fired


def tools(*names: str, success: bool | None = True, args: str | None = None) -> RunBuilder:
    run = RunBuilder(tools=sorted(set(names)))
    for i, name in enumerate(names):
        run.tool(name, success=success, args=args or f"args-{i}")
    return run.answer()


# -- TOOL_LOOP: same tool >= 3 times within 5 tool calls ----------------------


def test_tool_loop_fires_at_three_in_five() -> None:
    signal = fired(tools("search", "calc", "search", "fetch", "search"), "TOOL_LOOP")
    assert signal is not None
    assert signal.severity == "HIGH"
    assert signal.step_index == 5  # the call that made it three
    assert signal.evidence["tool"] == "search"
    assert signal.evidence["calls"] == 3
    assert signal.evidence["max_in_window"] == 3
    assert signal.evidence["steps"] == [1, 3, 5]


def test_tool_loop_silent_at_two_in_five() -> None:
    assert fired(tools("search", "calc", "search", "fetch", "lookup"), "TOOL_LOOP") is None


def test_tool_loop_fires_over_threshold() -> None:
    signal = fired(tools("search", "search", "calc", "search", "search"), "TOOL_LOOP")
    assert signal is not None
    assert signal.evidence["max_in_window"] == 4
    assert signal.step_index == 4  # already three at the fourth call


def test_tool_loop_needs_the_repeats_inside_one_window() -> None:
    # Three calls of search in the run, but never three within five calls.
    run = tools("search", "a", "b", "c", "search", "d", "e", "f", "search")
    assert fired(run, "TOOL_LOOP") is None


def test_tool_loop_short_run_is_one_window() -> None:
    signal = fired(tools("search", "search", "search", args="same"), "TOOL_LOOP")
    assert signal is not None
    assert signal.evidence["args_identical"] is True
    assert signal.evidence["distinct_args"] == 1


def test_tool_loop_reports_differing_arguments() -> None:
    signal = fired(tools("search", "search", "search"), "TOOL_LOOP")
    assert signal is not None
    assert signal.evidence["args_identical"] is False
    assert signal.evidence["distinct_args"] == 3


def test_tool_loop_threshold_per_agent() -> None:
    cfg = DetectorConfig.from_mapping({"agents": {"agent": {"TOOL_LOOP": {"min_repeats": 4}}}})
    assert fired(tools("s", "s", "x", "s"), "TOOL_LOOP", config=cfg) is None
    assert fired(tools("s", "s", "x", "s", "s"), "TOOL_LOOP", config=cfg) is not None


def test_tool_loop_window_is_tunable() -> None:
    run = tools("search", "a", "b", "c", "search", "d", "search")
    assert fired(run, "TOOL_LOOP") is None  # spread over 7 calls
    assert fired(run, "TOOL_LOOP", config=config(tool_loop={"window": 7})) is not None


# -- TOOL_THRASHING: alternation between exactly two tools over 6 calls ------


def test_thrashing_fires_at_six_alternating_calls() -> None:
    signal = fired(tools("a", "b", "a", "b", "a", "b"), "TOOL_THRASHING")
    assert signal is not None
    assert signal.severity == "HIGH"
    assert signal.step_index == 6
    assert {signal.evidence["tool_a"], signal.evidence["tool_b"]} == {"a", "b"}
    assert signal.evidence["alternating_calls"] == 6
    assert (signal.evidence["first_step"], signal.evidence["last_step"]) == (1, 6)


def test_thrashing_silent_at_five_alternating_calls() -> None:
    assert fired(tools("a", "b", "a", "b", "a"), "TOOL_THRASHING") is None
    assert fired(tools("c", "a", "b", "a", "b", "a"), "TOOL_THRASHING") is None


def test_thrashing_fires_over_threshold_and_reports_the_longest_stretch() -> None:
    signal = fired(tools("c", "a", "b", "a", "b", "a", "b", "a"), "TOOL_THRASHING")
    assert signal is not None
    assert signal.evidence["alternating_calls"] == 7
    assert signal.evidence["first_step"] == 2
    assert signal.step_index == 7  # where the stretch reached six


def test_thrashing_needs_exactly_two_tools_strictly_alternating() -> None:
    assert fired(tools("a", "b", "c", "a", "b", "c"), "TOOL_THRASHING") is None
    assert fired(tools("a", "b", "a", "a", "b", "a", "b"), "TOOL_THRASHING") is None


# -- RETRY_STORM: same tool fails 3 times in a row ----------------------------


def test_retry_storm_fires_at_three_failures() -> None:
    signal = fired(tools("pay", "pay", "pay", success=False, args="same"), "RETRY_STORM")
    assert signal is not None
    assert signal.severity == "HIGH"
    assert signal.step_index == 3
    assert signal.evidence["tool"] == "pay"
    assert signal.evidence["consecutive_failures"] == 3
    assert signal.evidence["args_identical"] is True
    assert signal.evidence["same_error"] is True


def test_retry_storm_silent_at_two_failures() -> None:
    assert fired(tools("pay", "pay", success=False), "RETRY_STORM") is None
    run = RunBuilder(tools=["pay"]).tool("pay", success=False).tool("pay", success=False).tool("pay").answer()
    assert fired(run, "RETRY_STORM") is None


def test_retry_storm_fires_over_threshold() -> None:
    signal = fired(tools("pay", "pay", "pay", "pay", success=False), "RETRY_STORM")
    assert signal is not None
    assert signal.evidence["consecutive_failures"] == 4
    assert signal.evidence["steps"] == [1, 2, 3, 4]


def test_retry_storm_llm_calls_between_retries_do_not_break_the_streak() -> None:
    run = RunBuilder(tools=["pay"])
    for _ in range(3):
        run.llm(finish_reason="tool_calls").tool("pay", success=False)
    assert fired(run.error(), "RETRY_STORM") is not None


def test_retry_storm_streak_broken_by_another_tool_or_a_missing_outcome() -> None:
    run = RunBuilder().tool("pay", success=False).tool("pay", success=False).tool("log")
    assert fired(run.tool("pay", success=False).answer(), "RETRY_STORM") is None
    run = RunBuilder().tool("pay", success=False).tool("pay", success=False).tool("pay", success=None)
    assert fired(run.tool("pay", success=False).answer(), "RETRY_STORM") is None


# -- CASCADING_TOOL_FAILURE: 3 consecutive failures across 2+ tools -----------


def test_cascading_fires_at_three_failures_across_two_tools() -> None:
    signal = fired(tools("db", "search", "db", success=False), "CASCADING_TOOL_FAILURE")
    assert signal is not None
    assert signal.severity == "HIGH"
    assert signal.step_index == 3
    assert signal.evidence["consecutive_failures"] == 3
    assert signal.evidence["tools"] == ["db", "search"]


def test_cascading_silent_at_two_failures() -> None:
    run = RunBuilder().tool("db", success=False).tool("search", success=False).tool("db").tool("x", success=False)
    assert fired(run.answer(), "CASCADING_TOOL_FAILURE") is None


def test_cascading_fires_over_threshold() -> None:
    signal = fired(tools("db", "search", "mail", "db", success=False), "CASCADING_TOOL_FAILURE")
    assert signal is not None
    assert signal.evidence["consecutive_failures"] == 4
    assert signal.evidence["distinct_tools"] == 3


def test_cascading_needs_two_tools() -> None:
    assert fired(tools("db", "db", "db", success=False), "CASCADING_TOOL_FAILURE") is None


def test_cascading_threshold_is_tunable() -> None:
    run = tools("db", "search", "db", success=False)
    assert fired(run, "CASCADING_TOOL_FAILURE", config=config(cascading_tool_failure={"threshold": 4})) is None
