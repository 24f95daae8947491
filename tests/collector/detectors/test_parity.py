"""One verdict in two places: every detector's firing run, replayed through
the real SDK with live detection on, gets the same signals (types and steps)
in the agent's process as the collector finds in what the SDK sent; and the
collector, given the live signals too, shows each type once, marked live."""

from __future__ import annotations

from typing import Any

import pytest

from dunetrace import Dunetrace
from dunetrace.run import Run
from tests.ingest_server import IngestServer

from .runs import judge
from .test_judge import FIRING

#: Text that makes the SDK's own injection check find what a run's evidence says.
PHRASES = {
    "developer_mode": "enable developer mode",
    "ignore_previous_instructions": "ignore all previous instructions",
}

#: DELEGATION_LOOP needs the runs that started this one (in-process only);
#: STEP_COUNT_INFLATION needs earlier runs (collector only).
ONE_PLACE = {"DELEGATION_LOOP", "STEP_COUNT_INFLATION"}


def replay(dt: Dunetrace, events: list[dict[str, Any]]) -> Run:
    """The run API calls that make the SDK send ``events`` (a RunBuilder run),
    at the events' own times."""
    now = [events[0]["timestamp"]]
    started = events[0]["payload"]
    found = started.get("injection_signal")
    user_input = None
    if found:
        user_input = ". ".join(PHRASES[p] for p in found["matched_patterns"] for _ in range(found["match_count"]))
    run = dt.run(
        events[0]["agent_id"], tools=started.get("tools") or None, model=started.get("model"), user_input=user_input
    )
    run.clock = lambda: now[0]
    run.start()
    steps: dict[int, int] = {}
    for event in events[1:]:
        now[0] = event["timestamp"]
        kind, p, step = event["event_type"], event["payload"], event["step_index"]
        if kind == "tool.called":
            args = "x" * (p["args_length"] - 2) if "args_length" in p else p.get("args_hash")
            steps[step] = run.tool_called(p["tool_name"], args)
        elif kind == "tool.responded":
            output = PHRASES["ignore_previous_instructions"] if "injection_signal" in p else None
            run.tool_responded(
                p["tool_name"],
                p["success"],
                p.get("output_length"),
                p.get("latency_ms"),
                p.get("error_hash"),
                output=output,
                step=steps[step],
            )
        elif kind == "llm.called":
            steps[step] = run.llm_called(p.get("model"), p.get("prompt_tokens"))
        elif kind == "llm.responded":
            run.llm_responded(
                p.get("completion_tokens"),
                p.get("latency_ms"),
                p.get("finish_reason"),
                p.get("output_length"),
                prompt_tokens=p.get("prompt_tokens"),
                step=steps[step],
            )
        elif kind == "retrieval.called":
            steps[step] = run.retrieval_called(p["index_name"], "q")
        elif kind == "retrieval.responded":
            documents = [PHRASES["ignore_previous_instructions"]] if "injection_signal" in p else None
            run.retrieval_responded(
                p["index_name"],
                p["result_count"],
                p.get("top_score"),
                p.get("latency_ms"),
                step=steps[step],
                documents=documents,
            )
        elif kind == "run.completed":
            run.finish(exit_reason=p["exit_reason"])
        elif kind == "run.errored":
            run.finish(error=type(p["error_type"], (Exception,), {})())
        else:
            raise AssertionError(f"replay does not know {kind}")
    return run


@pytest.mark.parametrize("name", sorted(set(FIRING) - ONE_PLACE))
def test_same_verdict_in_process_and_at_the_collector(name: str, ingest: IngestServer) -> None:
    dt = Dunetrace(endpoint=ingest.url, flush_interval=0.05, detectors=True)
    run = replay(dt, FIRING[name]().events)
    assert dt.flush(5)
    dt.shutdown(5)
    sent = [e for e in ingest.events if e["run_id"] == run.run_id]
    live = {s.type: s.step_index for s in run.signals}
    assert name in live
    own = [e for e in sent if e["event_type"] != "external.signal"]
    at_collector = {s.detector: s.step_index for s in judge(own)}
    assert at_collector == live
    # With the live signals: each type once, and the ones found live say so.
    shown = judge(sent)
    assert sorted(s.detector for s in shown) == sorted(live)
    assert all(s.live for s in shown)
    assert {s.detector: s.step_index for s in shown} == live


def test_the_collector_alone_finds_what_needs_other_runs() -> None:
    events = FIRING["STEP_COUNT_INFLATION"]().events
    [signal] = [s for s in judge(events, prior_step_counts=[10] * 10) if s.detector == "STEP_COUNT_INFLATION"]
    assert signal.live is False
