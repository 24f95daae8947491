"""LLM_TRUNCATION_LOOP, EMPTY_LLM_RESPONSE, CONTEXT_BLOAT, SLOW_STEP,
REASONING_STALL: at, just under and just over their thresholds."""

from __future__ import annotations

from .runs import RunBuilder, config, fired

# -- LLM_TRUNCATION_LOOP: finish_reason=length >= 2 times ---------------------


def test_truncation_loop_fires_at_two() -> None:
    run = RunBuilder().llm(finish_reason="length", prompt_tokens=900).llm()
    run.llm(finish_reason="length", prompt_tokens=950)
    signal = fired(run.answer(), "LLM_TRUNCATION_LOOP")
    assert signal is not None
    assert signal.severity == "HIGH"
    assert signal.step_index == 3
    assert signal.evidence["truncations"] == 2
    assert signal.evidence["llm_calls"] == 3
    assert signal.evidence["prompt_tokens"] == [900, 950]


def test_truncation_loop_silent_at_one() -> None:
    assert fired(RunBuilder().llm(finish_reason="length").llm().answer(), "LLM_TRUNCATION_LOOP") is None


def test_truncation_loop_fires_over_and_counts_max_tokens() -> None:
    run = RunBuilder().llm(finish_reason="length").llm(finish_reason="max_tokens").llm(finish_reason="length")
    signal = fired(run.answer(), "LLM_TRUNCATION_LOOP")
    assert signal is not None
    assert signal.evidence["truncations"] == 3
    assert signal.step_index == 2


def test_truncation_loop_threshold_one() -> None:
    run = RunBuilder().llm(finish_reason="length").answer()
    assert fired(run, "LLM_TRUNCATION_LOOP", config=config(llm_truncation_loop={"threshold": 1})) is not None


# -- EMPTY_LLM_RESPONSE: zero-length output with finish_reason=stop ----------


def test_empty_response_fires_at_zero_length() -> None:
    signal = fired(RunBuilder().llm().llm(output_length=0).answer(), "EMPTY_LLM_RESPONSE")
    assert signal is not None
    assert signal.severity == "HIGH"
    assert signal.step_index == 2
    assert signal.evidence["empty_responses"] == 1


def test_empty_response_silent_at_one_character() -> None:
    assert fired(RunBuilder().llm(output_length=1).answer(), "EMPTY_LLM_RESPONSE") is None


def test_empty_response_counts_every_empty_stop() -> None:
    run = RunBuilder().llm(output_length=0).llm(output_length=0, finish_reason="end_turn").llm()
    signal = fired(run.answer(), "EMPTY_LLM_RESPONSE")
    assert signal is not None
    assert signal.evidence["empty_responses"] == 2
    assert signal.evidence["steps"] == [1, 2]


def test_empty_response_not_for_tool_calls_or_unknown_length() -> None:
    run = RunBuilder().llm(output_length=0, finish_reason="tool_calls").llm(output_length=None)
    assert fired(run.answer(), "EMPTY_LLM_RESPONSE") is None


def test_empty_response_can_be_turned_off() -> None:
    run = RunBuilder().llm(output_length=0).answer()
    assert fired(run, "EMPTY_LLM_RESPONSE", config=config(EMPTY_LLM_RESPONSE={"enabled": False})) is None


# -- CONTEXT_BLOAT: >= 3 calls with tokens, last/first >= 3.0, last >= 2000 ---


def bloat(*tokens: int | None) -> RunBuilder:
    run = RunBuilder()
    for count in tokens:
        run.llm(prompt_tokens=count)
    return run.answer()


def test_context_bloat_fires_at_threefold_growth() -> None:
    signal = fired(bloat(1000, 2000, 3000), "CONTEXT_BLOAT")
    assert signal is not None
    assert signal.severity == "MEDIUM"
    assert signal.step_index == 3
    assert signal.evidence["growth"] == 3.0
    assert (signal.evidence["first_tokens"], signal.evidence["last_tokens"]) == (1000, 3000)


def test_context_bloat_silent_just_under_threefold() -> None:
    assert fired(bloat(1000, 2000, 2999), "CONTEXT_BLOAT") is None


def test_context_bloat_fires_just_over_threefold() -> None:
    signal = fired(bloat(1000, 2000, 3001), "CONTEXT_BLOAT")
    assert signal is not None
    assert signal.evidence["growth"] == 3.0  # rounded; the check is exact


def test_context_bloat_needs_three_calls_with_tokens() -> None:
    assert fired(bloat(1000, 5000), "CONTEXT_BLOAT") is None
    signal = fired(bloat(1000, None, 2500, 5000), "CONTEXT_BLOAT")  # a call without a count is skipped
    assert signal is not None
    assert signal.evidence["llm_calls_with_tokens"] == 3


def test_context_bloat_needs_a_large_last_prompt() -> None:
    assert fired(bloat(600, 1000, 1999), "CONTEXT_BLOAT") is None
    assert fired(bloat(600, 1000, 2000), "CONTEXT_BLOAT") is not None


def test_context_bloat_uses_the_providers_count_from_the_response() -> None:
    run = RunBuilder()
    run.llm(prompt_tokens=1000).llm(prompt_tokens=2000).llm(prompt_tokens=2500)
    run.events[-1]["payload"]["prompt_tokens"] = 3500  # llm.responded of the last call
    assert fired(run.answer(), "CONTEXT_BLOAT") is not None


# -- SLOW_STEP: tool > 15 s or LLM > 30 s; HIGH at 5x -------------------------


def test_slow_tool_fires_just_over_15s() -> None:
    signal = fired(RunBuilder().tool("fetch", latency_ms=15_001).answer(), "SLOW_STEP")
    assert signal is not None
    assert signal.severity == "MEDIUM"
    assert signal.step_index == 1
    assert signal.evidence["kind"] == "tool"
    assert signal.evidence["tool"] == "fetch"
    assert signal.evidence["duration_ms"] == 15_001
    assert signal.evidence["limit_ms"] == 15_000


def test_slow_tool_silent_at_and_under_15s() -> None:
    assert fired(RunBuilder().tool("fetch", latency_ms=15_000).answer(), "SLOW_STEP") is None
    assert fired(RunBuilder().tool("fetch", latency_ms=14_999).answer(), "SLOW_STEP") is None


def test_slow_llm_at_under_and_over_30s() -> None:
    assert fired(RunBuilder().llm(latency_ms=30_000).answer(), "SLOW_STEP") is None
    signal = fired(RunBuilder().llm(latency_ms=30_001).answer(), "SLOW_STEP")
    assert signal is not None
    assert signal.evidence["kind"] == "llm"
    # A 20 s LLM call is fine although a 20 s tool call is not.
    assert fired(RunBuilder().llm(latency_ms=20_000).answer(), "SLOW_STEP") is None


def test_slow_step_high_at_five_times_the_limit() -> None:
    medium = fired(RunBuilder().tool("fetch", latency_ms=74_999).answer(), "SLOW_STEP")
    assert medium is not None
    assert medium.severity == "MEDIUM"
    signal = fired(RunBuilder().tool("fetch", latency_ms=75_000).answer(), "SLOW_STEP")
    assert signal is not None
    assert signal.severity == "HIGH"
    assert signal.evidence["ratio"] == 5.0


def test_slow_step_reports_the_worst_step() -> None:
    run = RunBuilder().tool("a", latency_ms=20_000).llm(latency_ms=90_000).tool("b", latency_ms=16_000)
    signal = fired(run.answer(), "SLOW_STEP")
    assert signal is not None
    assert signal.step_index == 2  # 3x its limit beats 1.33x and 1.07x
    assert signal.evidence["slow_steps"] == 3


def test_slow_step_from_timestamps_when_no_latency_is_reported() -> None:
    assert fired(RunBuilder().tool("fetch", latency_ms=None, seconds=16).answer(), "SLOW_STEP") is not None
    assert fired(RunBuilder().tool("fetch", latency_ms=None, seconds=14).answer(), "SLOW_STEP") is None


def test_slow_step_limits_are_tunable() -> None:
    run = RunBuilder().tool("fetch", latency_ms=20_000).answer()
    assert fired(run, "SLOW_STEP", config=config(slow_step={"tool_seconds": 60})) is None


# -- REASONING_STALL: >= 5 LLM calls and LLM:tool ratio >= 4 -----------------


def stall(llm_calls: int, tool_calls: int, tools: list[str] | None = None) -> RunBuilder:
    run = RunBuilder(tools=["search"] if tools is None else tools)
    for _ in range(tool_calls):
        run.tool("search")
    return run.llms(llm_calls).answer()


def test_reasoning_stall_fires_at_five_calls() -> None:
    signal = fired(stall(5, 1), "REASONING_STALL")
    assert signal is not None
    assert signal.severity == "MEDIUM"
    assert signal.evidence["ratio"] == 5.0


def test_reasoning_stall_silent_under_five_calls() -> None:
    assert fired(stall(4, 0), "REASONING_STALL") is None


def test_reasoning_stall_ratio_at_under_and_over_four() -> None:
    assert fired(stall(8, 2), "REASONING_STALL") is not None
    assert fired(stall(7, 2), "REASONING_STALL") is None
    signal = fired(stall(9, 2), "REASONING_STALL")
    assert signal is not None
    assert signal.evidence["ratio"] == 4.5


def test_reasoning_stall_not_for_an_agent_without_tools() -> None:
    assert fired(stall(8, 0, tools=[]), "REASONING_STALL") is None
