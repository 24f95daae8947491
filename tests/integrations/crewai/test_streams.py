"""Issue 16 points 4 and 5 on real crews: a streaming crew
(``Crew(stream=True)``) read to the end, closed early or never read, and
the order on the wire: each run's ``run.started`` first, its one terminal
event last, every call answered before it."""

from __future__ import annotations

from typing import Any

import pytest
from crewai import Agent, Crew, Task
from crewai.events.types.llm_events import LLMCallType
from crewai.llms.base_llm import llm_call_context

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer

from .crews import ScriptedLLM, final, react, search
from .wire import by_run, delivered

TERMINAL = ("run.completed", "run.errored")


class StreamingLLM(ScriptedLLM):
    """Sends each reply in word-sized chunks before completing the call."""

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        from_task, from_agent = kwargs.get("from_task"), kwargs.get("from_agent")
        with llm_call_context():
            self._emit_call_started_event(messages=messages, from_task=from_task, from_agent=from_agent)
            reply = self.script[min(self.calls, len(self.script) - 1)]
            self.calls += 1
            for word in reply.split(" "):
                self._emit_stream_chunk_event(chunk=word + " ", from_task=from_task, from_agent=from_agent)
            self._emit_call_completed_event(
                response=reply, call_type=LLMCallType.LLM_CALL, from_task=from_task, from_agent=from_agent
            )
            return reply


def _streaming_crew() -> Crew:
    llm = StreamingLLM(model="streaming", script=[react("search", {"query": "q"}), final("the streamed answer")])
    agent = Agent(role="Researcher", goal="Find", backstory="b", llm=llm, tools=[search], cache=False)
    task = Task(name="find", description="Find it", expected_output="x", agent=agent)
    return Crew(agents=[agent], tasks=[task], stream=True)


def assert_in_order(events: list[dict[str, Any]]) -> None:
    """Per run, in the order the server received them: started first, one
    terminal last, every call answered before it."""
    for key, run in by_run(events).items():
        kinds = [e["event_type"] for e in run]
        assert kinds[0] == "run.started", key
        assert kinds[-1] in TERMINAL and sum(k in TERMINAL for k in kinds) == 1, key
        for call in ("llm", "tool"):
            called = sorted(e["step_index"] for e in run if e["event_type"] == f"{call}.called")
            answered = sorted(e["step_index"] for e in run if e["event_type"] == f"{call}.responded")
            assert called == answered, key


@pytest.mark.parametrize("read", ["to the end", "one chunk, then close"])
def test_a_streaming_crew_is_reported_whole(crew_dt: Dunetrace, ingest: IngestServer, read: str) -> None:
    stream: Any = _streaming_crew().kickoff()
    chunks = []
    for chunk in stream:
        chunks.append(chunk)
        if read != "to the end":
            break
    if read == "to the end":
        assert stream.result.raw == "the streamed answer"
    else:
        # CrewAI 1.15 lets the crew finish in its thread when the stream closes.
        stream.close()
    assert chunks
    events = delivered(ingest, crew_dt, runs=2)
    assert_in_order(events)
    runs = by_run(events)
    (researcher,) = [v for k, v in runs.items() if k.startswith("crew.researcher#")]
    assert [e["payload"].get("finish_reason") for e in researcher if e["event_type"] == "llm.responded"] == [
        "stop",
        "stop",
    ]
    assert researcher[-1]["payload"]["exit_reason"] == "final_answer"


def test_a_stream_never_read_starts_no_run(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    stream = _streaming_crew().kickoff()
    del stream  # CrewAI 1.15 runs a streaming crew only as it is read
    assert delivered(ingest, crew_dt) == []


def test_order_holds_across_concurrent_failing_and_nested_crews(crew_dt: Dunetrace, ingest: IngestServer) -> None:
    import threading

    from .crews import broken, two_agent_crew

    crews = [
        two_agent_crew([react("search", {"query": str(i)}) for i in range(3)] + [final("s")]),
        two_agent_crew([react("broken", {"query": "q"}), final("b")], tools=[broken]),
        two_agent_crew([RuntimeError("model down")]),
    ]
    errors: list[BaseException] = []

    def kick(crew: Crew) -> None:
        try:
            crew.kickoff(inputs={"topic": "t"})
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=kick, args=(crew,)) for crew in crews]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(errors) == 1
    events = delivered(ingest, crew_dt, runs=3 + 2 + 2 + 3)
    assert_in_order(events)
    # A child's end reaches the server before its parent's.
    ends = {e["run_id"]: i for i, e in enumerate(events) if e["event_type"] in TERMINAL}
    for e in events:
        if e["event_type"] == "run.started" and e["parent_run_id"] is not None:
            assert ends[e["run_id"]] < ends[e["parent_run_id"]]
