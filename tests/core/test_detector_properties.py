"""Property tests: the detectors take whatever a sender puts in a payload,
and settings whatever a user writes; neither ever raises anything but a
clear ValueError for bad settings."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dunetrace.detectors import DETECTORS, DetectorSettings, RunJudge

KINDS = [
    "run.started",
    "llm.called",
    "llm.responded",
    "tool.called",
    "tool.responded",
    "retrieval.called",
    "retrieval.responded",
    "external.signal",
    "run.completed",
    "run.errored",
    "unknown.kind",
]
KEYS = [
    "tool_name",
    "args_hash",
    "args_length",
    "success",
    "latency_ms",
    "error_hash",
    "prompt_tokens",
    "completion_tokens",
    "finish_reason",
    "output_length",
    "model",
    "result_count",
    "top_score",
    "index_name",
    "tools",
    "injection_signal",
    "exit_reason",
    "error_type",
    "total_steps",
    "dropped_events",
    "signal_name",
    "matched_patterns",
    "match_count",
    "fields",
]
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-5, 10**7)
    | st.floats(allow_nan=True)
    | st.text(max_size=8)
    | st.sampled_from(["length", "stop", "error", "tool_calls", "final_answer", "prompt_injection", "search"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    max_leaves=6,
)
events = st.lists(
    st.tuples(
        st.sampled_from(KINDS),
        st.integers(0, 60),
        st.dictionaries(st.sampled_from(KEYS), values, max_size=6),
        st.none() | st.floats(0, 2e9),
    ),
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(events)
def test_any_payload_is_judged_without_raising(feed: list[tuple[str, int, dict[str, Any], float | None]]) -> None:
    judge = RunJudge(DetectorSettings().for_agent("a"), agent_id="a", clock=lambda: 1.0)
    fired: list[str] = []
    for kind, step, payload, ts in feed:
        fired += judge.observe(kind, step, payload, ts)
    fired += judge.end()
    assert len(fired) == len(set(fired)) == len(judge.fired)  # once per type
    for name in fired:
        finding = judge.finding(name)
        assert finding.severity in ("LOW", "MEDIUM", "HIGH", "CRITICAL")
        assert isinstance(finding.evidence, dict)


names = st.sampled_from([d.name for d in DETECTORS] + [d.name.lower() for d in DETECTORS] + ["nope"])
setting_values = st.none() | st.booleans() | st.integers(-3, 100) | st.floats(allow_nan=True) | st.text(max_size=4)


@settings(max_examples=150, deadline=None)
@given(
    st.dictionaries(
        names,
        st.none()
        | st.dictionaries(
            st.text(max_size=12)
            | st.sampled_from(["threshold", "window", "enabled", "min_matches", "max_steps", "growth_factor"]),
            setting_values,
            max_size=3,
        ),
        max_size=4,
    )
)
def test_any_settings_load_or_fail_with_a_value_error(section: dict[str, Any]) -> None:
    try:
        loaded = DetectorSettings.from_mapping({"default": section})
    except ValueError as exc:
        assert "default" in str(exc)
        return
    params = loaded.for_agent("x")
    RunJudge(params)  # every loaded setting makes a working judge
    for detector in DETECTORS:
        assert isinstance(params[detector.name]["enabled"], bool)


THRESHOLD_SLOTS = ("_loop_max", "_loop_window", "_th_window", "_sc_min", "_rs_max", "_max_steps", "_max_tokens")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 8), st.integers(1, 10), st.booleans()), min_size=1, max_size=6))
def test_each_judge_has_the_thresholds_of_its_own_settings(configs: list[tuple[int, int, bool]]) -> None:
    # Judges read their thresholds from a cache keyed by the settings object:
    # settings made and dropped one after another (ids reused) must never
    # hand a judge another's thresholds.
    for threshold, window, enabled in configs:
        params = DetectorSettings.from_mapping(
            {"default": {"tool_loop": {"threshold": threshold, "window": window, "enabled": enabled}}}
        ).for_agent("a")
        judge = RunJudge(params, agent_id="a")
        assert tuple(getattr(judge, slot) for slot in THRESHOLD_SLOTS) == tuple(
            getattr(fresh, slot) for fresh in [_fresh_judge(params)] for slot in THRESHOLD_SLOTS
        )
        fired_at = None
        for step in range(1, 12):
            if judge.observe("tool.called", step, {"tool_name": "search"}):
                fired_at = step
        expected = threshold if enabled and threshold <= max(window, 1) else None
        assert fired_at == expected, (threshold, window, enabled)


def _fresh_judge(params: Any) -> RunJudge:
    from dunetrace.detectors import _judge

    _judge._THRESHOLDS.clear()
    return RunJudge(params, agent_id="a")


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from("abcdefghij"), max_size=40),
    st.integers(1, 9),
    st.integers(1, 10),
)
def test_scattershot_fires_where_the_window_first_holds_enough_tools(
    tools: list[str], min_distinct: int, window: int
) -> None:
    # The reference: the distinct tools of the last `window` calls, counted
    # afresh at every call.
    expected = None
    for i in range(len(tools)):
        recent = set(tools[max(0, i + 1 - window) : i + 1])
        if len(recent) >= min_distinct:
            expected = (i + 1, len(recent), sorted(recent))
            break
    params = DetectorSettings.from_mapping(
        {"default": {"scattershot_tool_use": {"min_distinct": min_distinct, "window": window}}}
    ).for_agent("a")
    judge = RunJudge(params, agent_id="a")
    fired_at = None
    for step, tool in enumerate(tools, start=1):
        if "SCATTERSHOT_TOOL_USE" in judge.observe("tool.called", step, {"tool_name": tool}):
            fired_at = step
    assert (fired_at, judge.scatter) == ((expected[0], expected) if expected else (None, None))
