"""Hand-built runs: wire events as the SDK sends them, written step by step.

run = RunBuilder(tools=["search"]).llm().tool("search").llm().answer()
signals = judge(run)
"""

from __future__ import annotations

from typing import Any

from dunetrace.collector.detectors import DetectorConfig, Signal, judge_run


class RunBuilder:
    def __init__(
        self,
        agent_id: str = "agent",
        *,
        tools: list[str] | None = None,
        run_id: str = "run-1",
        start: float = 1_700_000_000.0,
    ) -> None:
        self.run_id = run_id
        self.agent_id = agent_id
        self.events: list[dict[str, Any]] = []
        self.step = 0
        self.clock = start
        self._emit("run.started", 0, {"tools": list(tools or []), "model": "fake-model"})

    def _emit(self, event_type: str, step: int, payload: dict[str, Any], seconds: float = 0.01) -> None:
        self.clock += seconds
        self.events.append(
            {
                "event_type": event_type,
                "run_id": self.run_id,
                "agent_id": self.agent_id,
                "agent_version": "abc123",
                "step_index": step,
                "timestamp": self.clock,
                "payload": payload,
                "parent_run_id": None,
            }
        )

    def tool(
        self,
        name: str,
        *,
        success: bool | None = True,
        args: str = "args-1",
        latency_ms: float | None = 5.0,
        seconds: float = 0.005,
        args_length: int | None = None,
        injection: dict[str, Any] | None = None,
    ) -> RunBuilder:
        """A tool call and (unless ``success`` is None) its response;
        ``injection`` is the evidence the SDK found in the tool's output."""
        self.step += 1
        called: dict[str, Any] = {"tool_name": name, "args_hash": args}
        if args_length is not None:
            called["args_length"] = args_length
        self._emit("tool.called", self.step, called)
        if success is not None:
            payload: dict[str, Any] = {"tool_name": name, "success": success, "output_length": 10}
            if injection is not None:
                payload["injection_signal"] = injection
            if latency_ms is not None:
                payload["latency_ms"] = latency_ms
            if not success:
                payload["error_hash"] = "err-1"
            self._emit("tool.responded", self.step, payload, seconds)
        return self

    def llm(
        self,
        *,
        prompt_tokens: int | None = None,
        finish_reason: str | None = "stop",
        output_length: int | None = 20,
        latency_ms: float | None = 50.0,
        seconds: float = 0.05,
        responded: bool = True,
        model: str = "fake-model",
    ) -> RunBuilder:
        self.step += 1
        called: dict[str, Any] = {"model": model}
        if prompt_tokens is not None:
            called["prompt_tokens"] = prompt_tokens
        self._emit("llm.called", self.step, called)
        if responded:
            payload: dict[str, Any] = {"completion_tokens": 7}
            if prompt_tokens is not None:
                payload["prompt_tokens"] = prompt_tokens
            if finish_reason is not None:
                payload["finish_reason"] = finish_reason
            if output_length is not None:
                payload["output_length"] = output_length
            if latency_ms is not None:
                payload["latency_ms"] = latency_ms
            self._emit("llm.responded", self.step, payload, seconds)
        return self

    def llms(self, count: int, **kwargs: Any) -> RunBuilder:
        for _ in range(count):
            self.llm(**kwargs)
        return self

    def retrieval(
        self,
        index: str = "docs",
        *,
        result_count: int = 3,
        top_score: float | None = 0.8,
        injection: dict[str, Any] | None = None,
    ) -> RunBuilder:
        """A retrieval and its response; ``injection`` is the evidence the
        SDK found in the documents."""
        self.step += 1
        self._emit("retrieval.called", self.step, {"index_name": index, "query_hash": "q-1"})
        payload: dict[str, Any] = {
            "index_name": index,
            "result_count": result_count,
            "top_score": top_score,
            "latency_ms": 3.0,
        }
        if injection is not None:
            payload["injection_signal"] = injection
        self._emit("retrieval.responded", self.step, payload)
        return self

    def live_signal(self, name: str, severity: str = "HIGH", **evidence: Any) -> RunBuilder:
        """What the SDK sends when a detector fired in the agent's process."""
        payload = {
            "signal_name": name,
            "source": "dunetrace",
            "severity": severity,
            "confidence": 0.9,
            "evidence": evidence,
            "live": True,
        }
        self._emit("external.signal", self.step, payload)
        return self

    def injection(self, patterns: list[str], match_count: int, fields: list[str] | None = None) -> RunBuilder:
        """What ``Run.start()`` sends when the input matched: the evidence in
        ``run.started.payload.injection_signal``."""
        self.events[0]["payload"]["injection_signal"] = {
            "matched_patterns": patterns,
            "matched_pattern_count": len(patterns),
            "match_count": match_count,
            "fields": ["user_input"] if fields is None else fields,
        }
        return self

    def injection_signal_event(self, patterns: list[str], match_count: int) -> RunBuilder:
        """What older SDKs sent instead: an ``external.signal`` at step 0."""
        payload = {
            "signal_name": "prompt_injection",
            "source": "dunetrace",
            "patterns": patterns,
            "match_count": match_count,
        }
        self._emit("external.signal", 0, payload)
        return self

    def answer(self, exit_reason: str = "final_answer") -> RunBuilder:
        self._emit("run.completed", self.step, {"exit_reason": exit_reason, "total_steps": self.step})
        return self

    def error(self, error_type: str = "ValueError") -> RunBuilder:
        self._emit("run.errored", self.step, {"error_type": error_type, "error_hash": "e-1", "total_steps": self.step})
        return self


#: What the SDK puts in a payload when content matched injection patterns.
CONTENT_INJECTION = {
    "matched_patterns": ["ignore_previous_instructions"],
    "matched_pattern_count": 1,
    "match_count": 1,
    "fields": ["output"],
    "offset_bucket": "0-255",
}


def judge(
    run: RunBuilder | list[dict[str, Any]],
    config: DetectorConfig | None = None,
    *,
    prior_step_counts: list[int] | tuple[int, ...] = (),
) -> list[Signal]:
    events = run.events if isinstance(run, RunBuilder) else run
    return judge_run(list(events), config or DetectorConfig(), prior_step_counts=prior_step_counts)


def fired(run: RunBuilder | list[dict[str, Any]], detector: str, **kwargs: Any) -> Signal | None:
    """The signal of ``detector`` for the run, or None."""
    found = [s for s in judge(run, **kwargs) if s.detector == detector]
    assert len(found) <= 1, found
    return found[0] if found else None


def config(**sections: dict[str, Any]) -> DetectorConfig:
    """A config whose ``default`` section is ``sections``."""
    return DetectorConfig.from_mapping({"default": sections})
