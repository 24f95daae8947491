"""The detectors added with the core library: each fires on its condition
and stays silent on the run just short of it."""

from __future__ import annotations

from .runs import CONTENT_INJECTION, RunBuilder, config, fired


def tools(*names: str) -> RunBuilder:
    run = RunBuilder()
    for name in names:
        run.tool(name)
    return run.answer()


def test_oversized_tool_arguments() -> None:
    assert fired(RunBuilder().tool("write", args_length=20_000).answer(), "OVERSIZED_TOOL_ARGUMENTS") is None
    signal = fired(RunBuilder().llm().tool("write", args_length=20_001).answer(), "OVERSIZED_TOOL_ARGUMENTS")
    assert signal is not None and signal.severity == "MEDIUM" and signal.step_index == 2
    assert signal.evidence == {"tool": "write", "step": 2, "args_chars": 20_001, "max_chars": 20_000}


def test_scattershot_tool_use() -> None:
    assert fired(tools("a", "b", "c", "d", "e", "e", "e", "e", "e", "f"), "SCATTERSHOT_TOOL_USE") is None
    signal = fired(tools("a", "b", "a", "c", "d", "e", "f"), "SCATTERSHOT_TOOL_USE")
    assert signal is not None and signal.severity == "LOW" and signal.step_index == 7
    assert signal.evidence["distinct_tools"] == 6 and signal.evidence["tools"] == ["a", "b", "c", "d", "e", "f"]


def test_excessive_retrieval() -> None:
    def run(count: int) -> RunBuilder:
        built = RunBuilder()
        for _ in range(count):
            built.retrieval()
        return built.llm().answer()

    assert fired(run(9), "EXCESSIVE_RETRIEVAL") is None
    signal = fired(run(10), "EXCESSIVE_RETRIEVAL")
    assert signal is not None and signal.step_index == 10 and signal.evidence["retrievals"] == 10
    assert fired(run(10), "EXCESSIVE_RETRIEVAL", config=config(excessive_retrieval={"threshold": 11})) is None


def test_silent_truncation() -> None:
    assert fired(RunBuilder().llm(finish_reason="length").llm().answer(), "SILENT_TRUNCATION") is None
    assert fired(RunBuilder().llm().llm(finish_reason="length").error(), "SILENT_TRUNCATION") is None
    signal = fired(RunBuilder().llm().llm(finish_reason="max_tokens").answer(), "SILENT_TRUNCATION")
    assert signal is not None and signal.step_index == 2 and signal.evidence["finish_reason"] == "max_tokens"


def test_premature_termination() -> None:
    failed = RunBuilder().llm(finish_reason="tool_calls").tool("fetch", success=False)
    assert fired(failed.llm().llm().answer(), "PREMATURE_TERMINATION") is None  # two model calls after it
    retried = RunBuilder().tool("fetch", success=False).tool("fetch").llm().answer()
    assert fired(retried, "PREMATURE_TERMINATION") is None
    signal = fired(RunBuilder().tool("fetch", success=False).llm().answer(), "PREMATURE_TERMINATION")
    assert signal is not None and signal.evidence["failed_tool"] == "fetch"
    assert signal.evidence["llm_calls_after"] == 1
    assert fired(RunBuilder().tool("fetch", success=False).answer(), "PREMATURE_TERMINATION") is not None


def test_unread_tool_error() -> None:
    assert fired(RunBuilder().tool("fetch", success=False).llm().tool("parse").answer(), "UNREAD_TOOL_ERROR") is None
    assert fired(RunBuilder().tool("fetch", success=False).tool("fetch").answer(), "UNREAD_TOOL_ERROR") is None
    signal = fired(RunBuilder().tool("fetch", success=False).tool("parse").answer(), "UNREAD_TOOL_ERROR")
    assert signal is not None and signal.step_index == 2
    assert signal.evidence == {"failed_tool": "fetch", "failed_step": 1, "next_tool_step": 2}


def test_runaway_iteration_on_steps_and_on_tokens() -> None:
    assert fired(RunBuilder().llms(50).answer(), "RUNAWAY_ITERATION") is None
    signal = fired(RunBuilder().llms(51).answer(), "RUNAWAY_ITERATION")
    assert signal is not None and signal.step_index == 51 and signal.severity == "HIGH"
    # completion tokens are 7 per call in these runs
    assert fired(RunBuilder().llms(2, prompt_tokens=149_993).answer(), "RUNAWAY_ITERATION") is None
    signal = fired(RunBuilder().llms(2, prompt_tokens=149_994).answer(), "RUNAWAY_ITERATION")
    assert signal is not None and signal.step_index == 2 and signal.evidence["total_tokens"] == 300_002


def test_model_fallback_drift() -> None:
    assert fired(RunBuilder().llm(model="big").llm(model="big").answer(), "MODEL_FALLBACK_DRIFT") is None
    signal = fired(RunBuilder().llm(model="big").llm(model="small").llm(model="big").answer(), "MODEL_FALLBACK_DRIFT")
    assert signal is not None and signal.step_index == 2
    assert signal.evidence["first_model"] == "big" and signal.evidence["models"] == ["big", "small"]


def test_instrumentation_degraded() -> None:
    assert fired(RunBuilder().llm().tool("fetch").answer(), "INSTRUMENTATION_DEGRADED") is None
    signal = fired(RunBuilder().llm(responded=False).answer(), "INSTRUMENTATION_DEGRADED")
    assert signal is not None and signal.severity == "LOW"
    assert signal.evidence["unanswered_llm_calls"] == 1
    dropped = RunBuilder().llm().answer()
    dropped.events[-1]["payload"]["dropped_events"] = 12
    signal = fired(dropped, "INSTRUMENTATION_DEGRADED")
    assert signal is not None and signal.evidence["dropped_events"] == 12


def test_retrieved_content_injection() -> None:
    assert fired(RunBuilder().retrieval().tool("fetch").llm().answer(), "RETRIEVED_CONTENT_INJECTION") is None
    signal = fired(
        RunBuilder().retrieval().tool("fetch", injection=CONTENT_INJECTION).answer(), "RETRIEVED_CONTENT_INJECTION"
    )
    assert signal is not None and signal.severity == "HIGH" and signal.step_index == 2
    assert signal.evidence["sources"] == ["tool:fetch"]
    assert signal.evidence["patterns"] == ["ignore_previous_instructions"]
    twice = config(retrieved_content_injection={"min_matches": 2})
    run = RunBuilder().retrieval("kb", injection=CONTENT_INJECTION).llm().answer()
    assert fired(run, "RETRIEVED_CONTENT_INJECTION", config=twice) is None
