"""Fixtures of the LangChain / LangGraph tests: a test fails when LangChain
logs that it swallowed an error of our handler."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

from dunetrace import Dunetrace
from dunetrace.integrations.langchain import DunetraceCallbackHandler, uninstrument


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def langchain_swallowed_nothing() -> Iterator[None]:
    """LangChain catches what a handler raises and only logs "Error in
    <Handler>.<callback>" (langchain-core 1.x), so a bug of ours under the
    strict guard would pass silently: fail the test on such a log line, and
    on any warning LangChain logs about callbacks."""
    collect = _Collect()
    logger = logging.getLogger("langchain_core.callbacks.manager")
    logger.addHandler(collect)
    yield
    logger.removeHandler(collect)
    messages = [r.getMessage() for r in collect.records]
    assert not messages, f"LangChain logged callback trouble: {messages}"


@pytest.fixture(autouse=True)
def _no_instrumentation_left() -> Iterator[None]:
    yield
    uninstrument()


@pytest.fixture
def handler(dt: Dunetrace) -> DunetraceCallbackHandler:
    return DunetraceCallbackHandler(dt, agent_id="test-agent")


def runs_of(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Events grouped by run_id, in arrival order."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        runs.setdefault(event["run_id"], []).append(event)
    return runs


def shape(events: list[dict[str, Any]]) -> list[tuple[str, int, Any]]:
    """(event_type, step_index, the name that matters) for each event."""
    out = []
    for e in events:
        p = e["payload"]
        name = p.get("tool_name") or p.get("index_name") or p.get("exit_reason")
        out.append((e["event_type"], e["step_index"], name))
    return out


def delivered(dt: Dunetrace, ingest: Any, runs: int = 1) -> list[dict[str, Any]]:
    """Flush, then the events once ``runs`` runs have ended."""
    dt.flush()
    assert ingest.wait_for(lambda evs: sum(e["event_type"] in ("run.completed", "run.errored") for e in evs) >= runs), (
        "runs did not end"
    )
    dt.flush()
    return ingest.events


def tool_loop(events: list[dict[str, Any]]) -> bool:
    """The contract's TOOL_LOOP rule: the same tool >= 3 times within a
    window of 5 tool calls."""
    names = [e["payload"]["tool_name"] for e in events if e["event_type"] == "tool.called"]
    for i in range(len(names)):
        window = names[i : i + 5]
        if any(window.count(n) >= 3 for n in set(window)):
            return True
    return False


def well_formed(run: list[dict[str, Any]]) -> None:
    """One run's events: started first at step 0, one terminal event last,
    steps never going back, every *.called answered at its own step."""
    assert run[0]["event_type"] == "run.started" and run[0]["step_index"] == 0
    assert run[-1]["event_type"] in ("run.completed", "run.errored")
    assert sum(e["event_type"] in ("run.completed", "run.errored") for e in run) == 1
    called: dict[int, str] = {}
    last = 0
    for e in run[1:-1]:
        kind, _, phase = e["event_type"].partition(".")
        if phase == "called":
            assert e["step_index"] > last
            last = e["step_index"]
            called[e["step_index"]] = kind
        elif phase == "responded":
            assert called.pop(e["step_index"]) == kind
    assert not called, f"unanswered calls: {called}"
    assert len({e["run_id"] for e in run}) == 1
