"""The offline example reports what its docstring promises."""

from __future__ import annotations

from typing import Any

from llama_index.core.instrumentation import get_dispatcher

from dunetrace import Dunetrace
from dunetrace.examples import llamaindex_agent

from .recorded import by_run, only, tool_loop, types, well_formed


def test_example_runs_offline_and_one_run_loops(dt: Dunetrace, received: Any) -> None:
    answers = llamaindex_agent.main(dt)
    assert answers == [
        "Breakfast is from 7:00 to 10:30 in the garden room.",
        "Sorry, no sea-view room is free that night.",
    ]
    assert llamaindex_agent.EXTRA == "llamaindex"
    runs = list(by_run(received()).values())
    assert len(runs) == 2
    healthy, looping = sorted(runs, key=len)
    for events in runs:
        well_formed(events)
        assert events[0]["agent_id"] == llamaindex_agent.AGENT_ID
        assert events[0]["payload"]["tools"] == ["hotel_docs", "check_room"]
    assert "retrieval.responded" in types(healthy) and not tool_loop(healthy)
    assert only(healthy, "retrieval.responded")[0]["payload"]["result_count"] == 2
    assert tool_loop(looping)
    assert [e["payload"]["tool_name"] for e in only(looping, "tool.called")] == ["check_room"] * 4
    # main() detached itself afterwards.
    assert not [h for h in get_dispatcher().span_handlers if type(h).__name__ == "DunetraceSpanHandler"]
