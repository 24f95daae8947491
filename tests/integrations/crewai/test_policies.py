"""Policies in a real CrewAI crew (offline, scripted LLMs): a looping agent
stopped mid-run through CrewAI's call hooks, inject_prompt added to the
agent's conversation, switch_model warned as not applicable."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import pytest

from dunetrace import Dunetrace, PolicyViolation
from dunetrace import log as dunetrace_log
from dunetrace.integrations.crewai import instrument
from tests.ingest_server import IngestServer

from .crews import ScriptedLLM, final, react, two_agent_crew
from .wire import by_run, delivered

# CrewAI itself refuses a repeat of the very same call, so the loop varies the query.
LOOP = [react("search", {"query": f"attempt {i}"}) for i in range(30)]


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "as-shipped"])
def test_a_looping_crew_is_stopped_after_a_set_number_of_calls(
    strict: bool, crew_dt: Dunetrace, ingest: IngestServer
) -> None:
    dunetrace_log.strict = strict
    crew_dt.add_policy("cap", when={"tool_calls": 3}, then="stop")
    seen: ClassVar[list[Any]] = []
    crew_dt.on_signal(lambda signal: seen.append((signal.type, signal.run.finished)))
    crew = two_agent_crew(LOOP)
    researcher_llm = crew.agents[0].llm
    with pytest.raises(PolicyViolation, match="cap") as err:
        crew.kickoff(inputs={"topic": "loops"})
    assert type(err.value).__name__ == "PolicyViolation"
    assert researcher_llm.calls == 3  # the fourth model call never happened
    assert seen == [("POLICY_TRIGGERED", False)]  # while the run was still going
    events = delivered(ingest, crew_dt, runs=2)
    runs = by_run(events)
    researcher = next(v for k, v in runs.items() if k.startswith("crew.researcher#"))
    crew_run = next(v for k, v in runs.items() if k.startswith("crew#"))
    assert sum(e["event_type"] == "tool.called" for e in researcher) == 3
    assert [
        e["payload"]["evidence"]["policy"] for e in researcher if e["payload"].get("signal_name") == "POLICY_TRIGGERED"
    ] == ["cap"]
    assert researcher[-1]["event_type"] == "run.errored"
    assert researcher[-1]["payload"]["error_type"] == "PolicyViolation"
    assert crew_run[-1]["event_type"] == "run.errored"
    assert crew_run[-1]["payload"]["error_type"] == "PolicyViolation"
    assert not any(k.startswith("crew.senior-writer#") for k in runs)  # the crew ended there


class RecordingLLM(ScriptedLLM):
    seen: ClassVar[list[Any]] = []

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        self.seen.append([dict(m) for m in messages] if isinstance(messages, list) else messages)
        return super().call(messages, *args, **kwargs)


def test_inject_prompt_is_added_to_the_agent_conversation(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    crew_dt.add_policy("nudge", when={"tool_calls": 2}, then={"inject_prompt": "NUDGE-TEXT stop searching"})
    crew = two_agent_crew([react("search", {"query": "a"}), react("search", {"query": "b"}), final("42")])
    llm = RecordingLLM(model="scripted-1", script=crew.agents[0].llm.script, seen=[])
    crew.agents[0].llm = llm
    assert crew.kickoff(inputs={"topic": "x"}).raw == "written"
    texts = [" ".join(str(m.get("content")) for m in call) for call in llm.seen]
    assert ["NUDGE-TEXT" in t for t in texts] == [False, False, True]
    events = delivered(ingest, crew_dt, runs=3)
    assert b"NUDGE-TEXT" not in ingest.raw()
    assert any(e["payload"].get("signal_name") == "POLICY_TRIGGERED" for e in events)


def test_switch_model_warns_once_that_crewai_cannot_apply_it(dt: Dunetrace, caplog: Any) -> None:
    dt.add_policy("cheaper", when={"steps": 3}, then={"switch_model": "small"})
    with caplog.at_level(logging.WARNING, logger="dunetrace"):
        instrument(dt, agent_id="crew")
        dt.add_policy("cheaper-2", when={"steps": 4}, then={"switch_model": "small"})
    assert caplog.text.count("CrewAI cannot apply switch_model") == 1


def test_hooks_are_installed_only_once_a_policy_needs_them(dt: Dunetrace) -> None:
    from crewai.hooks import get_before_llm_call_hooks

    from dunetrace.integrations.crewai import uninstrument

    instrument(dt, agent_id="crew")
    try:
        dt.add_policy("just-log", when={"steps": 3}, then="log")
        assert get_before_llm_call_hooks() == []  # CrewAI's fast path stays
        dt.add_policy("cap", when={"steps": 3}, then="stop")
        assert len(get_before_llm_call_hooks()) == 1
    finally:
        uninstrument(dt)
    assert get_before_llm_call_hooks() == []


def test_a_tool_call_after_a_stop_is_blocked(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    from crewai.tools import tool

    ran: list[str] = []

    @tool("search")
    def recording_search(query: str) -> str:
        """Look something up."""
        ran.append(query)
        return f"found: {query}"

    # Triggers at the first model call: the search it asks for is the next
    # safe point, and never runs; the model call after it raises.
    crew_dt.add_policy("cap", when={"steps": 1}, then="stop")
    crew = two_agent_crew(LOOP, tools=[recording_search])
    with pytest.raises(PolicyViolation):
        crew.kickoff(inputs={"topic": "loops"})
    assert ran == []
    assert crew.agents[0].llm.calls == 1
    runs = by_run(delivered(ingest, crew_dt, runs=2))
    researcher = next(v for k, v in runs.items() if k.startswith("crew.researcher#"))
    assert researcher[-1]["payload"]["error_type"] == "PolicyViolation"
