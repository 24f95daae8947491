"""The framework-free policy examples do what their docstrings say, on a
real ingest server."""

from __future__ import annotations

from dunetrace import Dunetrace
from dunetrace.examples import policy_log_agent, policy_stop_agent


def test_the_stop_example_ends_the_loop_after_three_searches(dt: Dunetrace, ingest) -> None:
    lines = policy_stop_agent.main(dt)
    assert lines[0].startswith("live signal POLICY_TRIGGERED at step 6, run still running")
    assert lines[1].startswith("stopped after 3 searches: dunetrace policy 'stop-search-loop'")
    assert dt.flush(5)
    events = ingest.events
    assert sum(e["event_type"] == "tool.called" for e in events) == policy_stop_agent.MAX_SEARCHES
    assert events[-1]["event_type"] == "run.errored" and events[-1]["payload"]["error_type"] == "PolicyViolation"


def test_the_log_example_only_reports(dt: Dunetrace, ingest) -> None:
    assert policy_log_agent.main(dt) == [
        "policy token-budget triggered: tokens >= 1000 (observed 1040)",
        "the run completed after 6 model calls",
    ]
    assert dt.flush(5)
    assert ingest.events[-1]["event_type"] == "run.completed"
    assert [e["payload"]["evidence"]["action"] for e in ingest.events if e["event_type"] == "external.signal"] == [
        "log"
    ]
