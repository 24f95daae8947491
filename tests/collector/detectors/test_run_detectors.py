"""TOOL_AVOIDANCE, GOAL_ABANDONMENT, RAG_EMPTY_RETRIEVAL, STEP_COUNT_INFLATION,
FIRST_STEP_FAILURE, PROMPT_INJECTION_SIGNAL: at, just under and just over
their thresholds."""

from __future__ import annotations

from .runs import RunBuilder, config, fired

# -- TOOL_AVOIDANCE: final answer without calling available tools (>= 2 LLM calls)


def test_tool_avoidance_fires_at_two_llm_calls() -> None:
    signal = fired(RunBuilder(tools=["search", "calc"]).llms(2).answer(), "TOOL_AVOIDANCE")
    assert signal is not None
    assert signal.severity == "MEDIUM"
    assert signal.evidence["llm_calls"] == 2
    assert signal.evidence["tools_available"] == ["search", "calc"]


def test_tool_avoidance_silent_at_one_llm_call() -> None:
    assert fired(RunBuilder(tools=["search"]).llms(1).answer(), "TOOL_AVOIDANCE") is None


def test_tool_avoidance_fires_over_threshold_and_on_plain_completion() -> None:
    signal = fired(RunBuilder(tools=["search"]).llms(3).answer("completed"), "TOOL_AVOIDANCE")
    assert signal is not None
    assert signal.evidence["llm_calls"] == 3


def test_tool_avoidance_needs_tools_an_answer_and_no_tool_call() -> None:
    assert fired(RunBuilder(tools=[]).llms(3).answer(), "TOOL_AVOIDANCE") is None
    assert fired(RunBuilder(tools=["search"]).llms(3).error(), "TOOL_AVOIDANCE") is None
    assert fired(RunBuilder(tools=["search"]).llms(3).answer("max_iterations"), "TOOL_AVOIDANCE") is None
    assert fired(RunBuilder(tools=["search"]).llm().tool("search").llm().answer(), "TOOL_AVOIDANCE") is None


# -- GOAL_ABANDONMENT: tool use stops, then >= 4 consecutive LLM calls without exit


def test_goal_abandonment_fires_at_four_llm_calls_after_the_last_tool() -> None:
    run = RunBuilder(tools=["search"]).llm().tool("search").llms(4).error()
    signal = fired(run, "GOAL_ABANDONMENT")
    assert signal is not None
    assert signal.severity == "MEDIUM"
    assert signal.step_index == 6
    assert signal.evidence["llm_calls_since_last_tool"] == 4
    assert signal.evidence["last_tool"] == "search"
    assert signal.evidence["last_tool_step"] == 2
    assert signal.evidence["ending"] == "errored"


def test_goal_abandonment_silent_at_three() -> None:
    assert fired(RunBuilder().tool("search").llms(3).error(), "GOAL_ABANDONMENT") is None


def test_goal_abandonment_fires_over_threshold_when_silent_or_stopped() -> None:
    silent = fired(RunBuilder().tool("search").llms(5), "GOAL_ABANDONMENT")
    assert silent is not None
    assert silent.evidence["llm_calls_since_last_tool"] == 5
    assert silent.evidence["ending"] == "silent"
    stopped = fired(RunBuilder().tool("search").llms(4).answer("max_iterations"), "GOAL_ABANDONMENT")
    assert stopped is not None
    assert stopped.evidence["ending"] == "max_iterations"


def test_goal_abandonment_not_when_answered_or_no_tool_was_used() -> None:
    assert fired(RunBuilder().tool("search").llms(6).answer(), "GOAL_ABANDONMENT") is None
    assert fired(RunBuilder(tools=["search"]).llms(6).error(), "GOAL_ABANDONMENT") is None


def test_goal_abandonment_llm_calls_must_be_consecutive() -> None:
    run = RunBuilder().tool("search").llms(2).retrieval().llms(2).error()
    assert fired(run, "GOAL_ABANDONMENT") is None


# -- RAG_EMPTY_RETRIEVAL: 0 results or top score < 0.3, and the agent answered


def test_rag_empty_fires_at_zero_results() -> None:
    run = RunBuilder().retrieval("kb", result_count=0, top_score=None).llm().answer()
    signal = fired(run, "RAG_EMPTY_RETRIEVAL")
    assert signal is not None
    assert signal.severity == "MEDIUM"
    assert signal.step_index == 1
    assert signal.evidence["index_name"] == "kb"
    assert signal.evidence["result_count"] == 0


def test_rag_empty_silent_at_one_result() -> None:
    assert fired(RunBuilder().retrieval(result_count=1).llm().answer(), "RAG_EMPTY_RETRIEVAL") is None


def test_rag_empty_score_at_under_and_over_threshold() -> None:
    def run(score: float) -> RunBuilder:
        return RunBuilder().retrieval(result_count=4, top_score=score).llm().answer()

    assert fired(run(0.3), "RAG_EMPTY_RETRIEVAL") is None
    assert fired(run(0.31), "RAG_EMPTY_RETRIEVAL") is None
    signal = fired(run(0.29), "RAG_EMPTY_RETRIEVAL")
    assert signal is not None
    assert signal.evidence["top_score"] == 0.29


def test_rag_empty_needs_an_answer() -> None:
    assert fired(RunBuilder().retrieval(result_count=0).llm().error(), "RAG_EMPTY_RETRIEVAL") is None


def test_rag_empty_reports_the_worst_of_several() -> None:
    run = RunBuilder().retrieval("a", top_score=0.1).retrieval("b", result_count=0).retrieval("c").llm().answer()
    signal = fired(run, "RAG_EMPTY_RETRIEVAL")
    assert signal is not None
    assert signal.evidence["index_name"] == "b"
    assert (signal.evidence["weak_retrievals"], signal.evidence["retrievals"]) == (2, 3)


def test_rag_empty_min_score_is_tunable() -> None:
    run = RunBuilder().retrieval(top_score=0.5).llm().answer()
    assert fired(run, "RAG_EMPTY_RETRIEVAL", config=config(rag_empty_retrieval={"min_score": 0.6})) is not None


# -- STEP_COUNT_INFLATION: steps > 2x P75 of prior runs (>= 10 prior runs) ----


def steps(count: int) -> RunBuilder:
    return RunBuilder().llms(count).answer()


def test_step_inflation_at_under_and_over_twice_p75() -> None:
    prior = [10] * 10
    assert fired(steps(20), "STEP_COUNT_INFLATION", prior_step_counts=prior) is None
    assert fired(steps(19), "STEP_COUNT_INFLATION", prior_step_counts=prior) is None
    signal = fired(steps(21), "STEP_COUNT_INFLATION", prior_step_counts=prior)
    assert signal is not None
    assert signal.severity == "MEDIUM"
    assert signal.evidence == {
        "steps": 21,
        "baseline_p75": 10.0,
        "ratio": 2.1,
        "inflation_factor": 2.0,
        "prior_runs": 10,
    }


def test_step_inflation_needs_ten_prior_runs() -> None:
    assert fired(steps(100), "STEP_COUNT_INFLATION", prior_step_counts=[10] * 9) is None
    assert fired(steps(100), "STEP_COUNT_INFLATION") is None
    cfg = config(step_count_inflation={"min_runs": 3})
    assert fired(steps(100), "STEP_COUNT_INFLATION", prior_step_counts=[10] * 3, config=cfg) is not None


def test_step_inflation_uses_the_75th_percentile() -> None:
    prior = [2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22]  # P75 (interpolated) = 17
    assert fired(steps(34), "STEP_COUNT_INFLATION", prior_step_counts=prior) is None
    signal = fired(steps(35), "STEP_COUNT_INFLATION", prior_step_counts=prior)
    assert signal is not None
    assert signal.evidence["baseline_p75"] == 17.0


# -- FIRST_STEP_FAILURE: error or empty output at step <= 2 --------------------


def test_first_step_failure_at_step_two() -> None:
    signal = fired(RunBuilder().llm().tool("auth", success=False).llm().answer(), "FIRST_STEP_FAILURE")
    assert signal is not None
    assert signal.severity == "MEDIUM"
    assert signal.step_index == 2
    assert signal.evidence == {"trigger": "tool_failure", "tool": "auth", "step": 2, "max_step": 2}


def test_first_step_failure_silent_at_step_three() -> None:
    assert fired(RunBuilder().llm().llm().tool("auth", success=False).answer(), "FIRST_STEP_FAILURE") is None
    assert fired(RunBuilder().llm().llm().llm().error(), "FIRST_STEP_FAILURE") is None


def test_first_step_failure_at_step_one_and_zero() -> None:
    signal = fired(RunBuilder().tool("auth", success=False).answer(), "FIRST_STEP_FAILURE")
    assert signal is not None
    assert signal.step_index == 1
    errored = fired(RunBuilder().error("KeyError"), "FIRST_STEP_FAILURE")
    assert errored is not None
    assert errored.evidence["trigger"] == "run_errored"
    assert errored.evidence["error_type"] == "KeyError"
    assert errored.step_index == 0


def test_first_step_failure_on_empty_or_errored_llm_output() -> None:
    empty = fired(RunBuilder().llm(output_length=0, finish_reason=None).llm().answer(), "FIRST_STEP_FAILURE")
    assert empty is not None
    assert empty.evidence["trigger"] == "empty_llm_output"
    error = fired(RunBuilder().llm().llm(finish_reason="error").answer(), "FIRST_STEP_FAILURE")
    assert error is not None
    assert error.evidence["trigger"] == "llm_error"
    assert fired(RunBuilder().llm(output_length=0, finish_reason="tool_calls").answer(), "FIRST_STEP_FAILURE") is None


def test_first_step_failure_max_step_is_tunable() -> None:
    run = RunBuilder().llm().llm().tool("auth", success=False).answer()
    assert fired(run, "FIRST_STEP_FAILURE", config=config(first_step_failure={"max_step": 3})) is not None
    only_step_zero = config(first_step_failure={"max_step": 0})
    assert fired(RunBuilder().llm().error(), "FIRST_STEP_FAILURE", config=only_step_zero) is None
    assert fired(RunBuilder().error(), "FIRST_STEP_FAILURE", config=only_step_zero) is not None


# -- PROMPT_INJECTION_SIGNAL: run.started.payload.injection_signal -----------


def test_prompt_injection_fires_at_one_match() -> None:
    run = RunBuilder().injection(["ignore_previous_instructions"], 1).llm().answer()
    signal = fired(run, "PROMPT_INJECTION_SIGNAL")
    assert signal is not None
    assert signal.severity == "CRITICAL"
    assert signal.step_index == 0
    assert signal.evidence["patterns"] == ["ignore_previous_instructions"]
    assert signal.evidence["match_count"] == 1
    assert signal.evidence["fields"] == ["user_input"]


def test_prompt_injection_reads_older_and_upstream_sdk_forms() -> None:
    # Older SDKs sent the evidence apart, as an external.signal at step 0.
    old = RunBuilder().injection_signal_event(["developer_mode"], 2).llm().answer()
    signal = fired(old, "PROMPT_INJECTION_SIGNAL")
    assert signal is not None
    assert (signal.evidence["patterns"], signal.evidence["match_count"]) == (["developer_mode"], 2)
    assert signal.evidence["sources"] == ["dunetrace"]
    # The upstream SDK's form: a pattern count, no match count.
    theirs = RunBuilder().llm().answer()
    theirs.events[0]["payload"]["injection_signal"] = {
        "matched_pattern_count": 2,
        "matched_patterns": ["jailbreak", "dan_mode"],
        "input_length": 40,
    }
    signal = fired(theirs, "PROMPT_INJECTION_SIGNAL")
    assert signal is not None
    assert (signal.evidence["patterns"], signal.evidence["match_count"]) == (["dan_mode", "jailbreak"], 2)
    # Junk in the evidence is read as far as it makes sense, never raises.
    junk = RunBuilder().llm().answer()
    junk.events[0]["payload"]["injection_signal"] = {"matched_patterns": "x", "match_count": True, "fields": [1]}
    assert fired(junk, "PROMPT_INJECTION_SIGNAL") is None
    junk.events[0]["payload"]["injection_signal"] = ["not", "an", "object"]
    assert fired(junk, "PROMPT_INJECTION_SIGNAL") is None


def test_prompt_injection_silent_without_matches() -> None:
    assert fired(RunBuilder().llm().answer(), "PROMPT_INJECTION_SIGNAL") is None
    assert fired(RunBuilder().injection([], 0).llm().answer(), "PROMPT_INJECTION_SIGNAL") is None
    other = RunBuilder().llm()
    other._emit("external.signal", 1, {"signal_name": "rate_limited", "source": "openai", "http_status": 429})
    assert fired(other.answer(), "PROMPT_INJECTION_SIGNAL") is None


def test_prompt_injection_over_threshold_and_tunable() -> None:
    run = RunBuilder().injection(["role_reassignment", "developer_mode"], 3).llm().answer()
    signal = fired(run, "PROMPT_INJECTION_SIGNAL")
    assert signal is not None
    assert signal.evidence["match_count"] == 3
    assert signal.evidence["patterns"] == ["developer_mode", "role_reassignment"]
    cfg = config(prompt_injection_signal={"min_matches": 2})
    assert fired(RunBuilder().injection(["developer_mode"], 1).answer(), "PROMPT_INJECTION_SIGNAL", config=cfg) is None
    assert fired(RunBuilder().injection(["developer_mode"], 2).answer(), "PROMPT_INJECTION_SIGNAL", config=cfg)


def test_step_inflation_skips_unusable_prior_counts() -> None:
    prior: list = [10] * 10 + [None, "12", float("inf"), float("nan"), -3, True]
    signal = fired(steps(21), "STEP_COUNT_INFLATION", prior_step_counts=prior)
    assert signal is not None
    assert signal.evidence["prior_runs"] == 10
