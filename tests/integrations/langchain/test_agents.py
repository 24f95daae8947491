"""Real LangChain / LangGraph agents on a scripted model, reported to a real
HTTP ingest server: the exact events they produce."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.tools import ToolException, tool

import dunetrace
from dunetrace import Dunetrace
from dunetrace.examples import langchain_agent
from dunetrace.integrations.langchain import DunetraceCallbackHandler
from dunetrace.model_calls import in_framework_model_call
from dunetrace.run import agent_version

from .conftest import delivered, runs_of, shape, tool_loop, well_formed
from .fakes import ScriptedChatModel, agent, call, question, search, state_graph

SCRIPT = [[call("search", query="paris weather")], [call("calculator", expression="6*7")], "Sunny, 42."]

EXPECTED = [
    ("run.started", 0, None),
    ("llm.called", 1, None),
    ("llm.responded", 1, None),
    ("tool.called", 2, "search"),
    ("tool.responded", 2, "search"),
    ("llm.called", 3, None),
    ("llm.responded", 3, None),
    ("tool.called", 4, "calculator"),
    ("tool.responded", 4, "calculator"),
    ("llm.called", 5, None),
    ("llm.responded", 5, None),
    ("run.completed", 5, "final_answer"),
]


@pytest.mark.parametrize("build", [agent, state_graph], ids=["create_agent", "StateGraph"])
def test_exact_sequence(build: Any, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    result = build(SCRIPT).invoke(question(), config={"callbacks": [handler]})
    assert result["messages"][-1].content == "Sunny, 42."

    events = delivered(dt, ingest)
    assert shape(events) == EXPECTED
    well_formed(events)
    assert {e["agent_id"] for e in events} == {"test-agent"}
    assert {e["parent_run_id"] for e in events} == {None}

    started = events[0]["payload"]
    assert started["model"] == "scripted-model"
    assert started["tools"] == ["search", "calculator"]
    assert started["input_hash"] == dt.hasher.value("What is the weather in Paris?")

    llm = [e["payload"] for e in events if e["event_type"] == "llm.responded"]
    assert [p["finish_reason"] for p in llm] == ["tool_calls", "tool_calls", "stop"]
    assert all(p["prompt_tokens"] == 100 and p["completion_tokens"] == 10 for p in llm)
    assert all(p["latency_ms"] >= 0 for p in llm)
    assert llm[2]["output_length"] == len("Sunny, 42.")
    assert llm[2]["output_hash"] == dt.hasher.value("Sunny, 42.")
    assert llm[0]["output_length"] > 0  # a reply of tool calls is not an empty reply
    assert [e["payload"]["model"] for e in events if e["event_type"] == "llm.called"] == ["scripted-model"] * 3

    tools = [e["payload"] for e in events if e["event_type"].startswith("tool.")]
    assert tools[0]["args_hash"] == dt.hasher.value({"query": "paris weather"})
    assert tools[1]["success"] is True and tools[1]["output_length"] == len("results for paris weather")
    assert tools[3]["output_length"] == 2
    assert handler.translator.live() == (0, 0)


def test_agent_version_follows_configuration(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    agent(["a"], system_prompt="one").invoke(question(), config={"callbacks": [handler]})
    agent(["a"], system_prompt="one").invoke(question(), config={"callbacks": [handler]})
    agent(["a"], system_prompt="two").invoke(question(), config={"callbacks": [handler]})
    agent(["a"], [search], system_prompt="one").invoke(question(), config={"callbacks": [handler]})
    events = delivered(dt, ingest, runs=4)
    versions = [run[0]["agent_version"] for run in runs_of(events).values()]
    assert versions[0] == versions[1]
    assert len(set(versions)) == 3
    assert versions[0] == agent_version(dt.hasher.value("one"), "scripted-model", ["search", "calculator"])


def test_tool_loop_meets_the_contract_rule(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    script = [[call("search", query="status")]] * 4 + ["gave up"]
    agent(script).invoke(question(), config={"callbacks": [handler]})
    events = delivered(dt, ingest)
    well_formed(events)
    assert [e["payload"]["tool_name"] for e in events if e["event_type"] == "tool.called"] == ["search"] * 4
    assert len({e["payload"]["args_hash"] for e in events if e["event_type"] == "tool.called"}) == 1
    assert tool_loop(events)


def test_a_healthy_run_is_no_tool_loop(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    agent(SCRIPT).invoke(question(), config={"callbacks": [handler]})
    assert not tool_loop(delivered(dt, ingest))


def test_the_example_is_a_tool_loop(dt: Dunetrace, ingest: Any) -> None:
    assert "still being processed" in str(langchain_agent.main(dt))
    events = delivered(dt, ingest)
    well_formed(events)
    assert {e["agent_id"] for e in events} == {langchain_agent.AGENT_ID}
    assert sum(e["event_type"] == "tool.called" for e in events) == 5
    assert tool_loop(events)
    assert events[-1]["payload"]["exit_reason"] == "final_answer"


def test_finish_reason_is_passed_as_given(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    agent(["cut off"], finish_reason="length").invoke(question(), config={"callbacks": [handler]})
    model = ScriptedChatModel(script=["x"], finish_reason="end_turn")
    model.invoke("hi", config={"callbacks": [handler]})
    events = delivered(dt, ingest, runs=2)
    reasons = [e["payload"]["finish_reason"] for e in events if e["event_type"] == "llm.responded"]
    assert reasons == ["length", "end_turn"]


def test_missing_usage_is_left_out(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    agent(["answer"], prompt_tokens=None).invoke(question(), config={"callbacks": [handler]})
    (responded,) = [e for e in delivered(dt, ingest) if e["event_type"] == "llm.responded"]
    assert "prompt_tokens" not in responded["payload"] and "completion_tokens" not in responded["payload"]


def test_a_bare_model_call_is_a_run(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    ScriptedChatModel(script=["hello"]).invoke("hi there", config={"callbacks": [handler]})
    events = delivered(dt, ingest)
    assert shape(events) == [
        ("run.started", 0, None),
        ("llm.called", 1, None),
        ("llm.responded", 1, None),
        ("run.completed", 1, "final_answer"),
    ]
    assert events[0]["payload"]["input_hash"] == dt.hasher.value("hi there")


def test_a_raising_tool_errors_the_run(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    @tool
    def broken(query: str) -> str:
        """Always fails."""
        raise KeyError("backend down")

    graph = state_graph([[call("broken", query="x")], "never"], [broken])
    # langgraph 1.x ToolNode re-raises errors other than ToolInvocationError
    # by default: the invoke raises.
    with pytest.raises(KeyError):
        graph.invoke(question(), config={"callbacks": [handler]})
    events = delivered(dt, ingest)
    assert shape(events)[-3:] == [
        ("tool.called", 2, "broken"),
        ("tool.responded", 2, "broken"),
        ("run.errored", 2, None),
    ]
    assert events[-2]["payload"]["success"] is False
    assert events[-2]["payload"]["error_hash"] == dt.hasher.error(KeyError("backend down"))
    assert events[-1]["payload"]["error_type"] == "KeyError"
    assert handler.translator.live() == (0, 0)


def test_tool_errors_returned_as_messages_are_failures(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    @tool
    def flaky(query: str) -> str:
        """Fails, and says so in its result."""
        raise ToolException("rate limited")

    flaky.handle_tool_error = True  # the tool returns ToolMessage(status="error")

    @tool
    def raising(query: str) -> str:
        """Raises; the agent's ToolNode turns it into an error message."""
        raise ValueError("bad query")

    script = [[call("flaky", query="a")], [call("raising", query="b")], "sorry"]
    graph = state_graph(script, [flaky, raising], handle_tool_errors=True)
    result = graph.invoke(question(), config={"callbacks": [handler]})
    assert result["messages"][-1].content == "sorry"

    events = delivered(dt, ingest)
    well_formed(events)
    tools = [e["payload"] for e in events if e["event_type"] == "tool.responded"]
    assert [(t["tool_name"], t["success"]) for t in tools] == [("flaky", False), ("raising", False)]
    assert tools[0]["error_hash"] == dt.hasher.value("rate limited")
    assert tools[1]["error_hash"] == dt.hasher.error(ValueError("bad query"))
    assert events[-1]["event_type"] == "run.completed"


def test_llm_error(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    class Failing(ScriptedChatModel):
        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            raise TimeoutError("provider timed out")

    from langchain.agents import create_agent

    graph = create_agent(Failing(script=[]), [search])
    with pytest.raises(TimeoutError):
        graph.invoke(question(), config={"callbacks": [handler]})
    events = delivered(dt, ingest)
    assert shape(events) == [
        ("run.started", 0, None),
        ("llm.called", 1, None),
        ("llm.responded", 1, None),
        ("run.errored", 1, None),
    ]
    assert events[2]["payload"]["finish_reason"] == "error"
    assert events[3]["payload"]["error_type"] == "TimeoutError"


def test_retriever(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever

    class Docs(BaseRetriever):
        def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
            if query == "nothing":
                return []
            return [
                Document(page_content="a", metadata={"score": 0.4}),
                Document(page_content="b", metadata={"score": 0.9}),
            ]

    retriever = Docs(name="kb")

    @tool
    def lookup(query: str) -> str:
        """Look up the knowledge base."""
        return " ".join(d.page_content for d in retriever.invoke(query))

    agent([[call("lookup", query="refunds")], [call("lookup", query="nothing")], "ok"], [lookup]).invoke(
        question(), config={"callbacks": [handler]}
    )
    events = delivered(dt, ingest)
    well_formed(events)
    assert [s for s in shape(events) if s[0].startswith(("retrieval", "tool"))] == [
        ("tool.called", 2, "lookup"),
        ("retrieval.called", 3, "kb"),
        ("retrieval.responded", 3, "kb"),
        ("tool.responded", 2, "lookup"),
        ("tool.called", 5, "lookup"),
        ("retrieval.called", 6, "kb"),
        ("retrieval.responded", 6, "kb"),
        ("tool.responded", 5, "lookup"),
    ]
    found = [e["payload"] for e in events if e["event_type"] == "retrieval.responded"]
    assert (found[0]["result_count"], found[0]["top_score"]) == (2, 0.9)
    assert (found[1]["result_count"], found[1]["top_score"]) == (0, None)
    called = [e["payload"] for e in events if e["event_type"] == "retrieval.called"]
    assert called[0]["query_hash"] == dt.hasher.value("refunds")


def test_graph_interrupt_is_not_an_error(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    from langgraph.checkpoint.memory import InMemorySaver
    from langgraph.types import Command, interrupt

    @tool
    def approve(amount: str) -> str:
        """Ask a human to approve a refund."""
        return "approved" if interrupt({"amount": amount}) == "yes" else "denied"

    from langchain.agents import create_agent

    graph = create_agent(
        ScriptedChatModel(script=[[call("approve", amount="30")], "refunded"]), [approve], checkpointer=InMemorySaver()
    )
    config: Any = {"callbacks": [handler], "configurable": {"thread_id": "t1"}}
    first = graph.invoke(question(), config=config)
    assert "__interrupt__" in first
    second = graph.invoke(Command(resume="yes"), config=config)
    assert second["messages"][-1].content == "refunded"

    runs = list(runs_of(delivered(dt, ingest, runs=2)).values())
    assert len(runs) == 2
    assert runs[0][-1]["event_type"] == "run.completed"
    assert runs[0][-1]["payload"]["exit_reason"] == "interrupted"
    assert not any(e["event_type"] == "run.errored" for run in runs for e in run)
    assert not any(e["event_type"] == "tool.responded" and not e["payload"]["success"] for run in runs for e in run)
    assert handler.translator.live() == (0, 0)


def test_events_join_the_users_run(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    with dt.run("outer-agent", user_input="hello") as run:
        agent(SCRIPT).invoke(question(), config={"callbacks": [handler]})
        assert dunetrace.get_current_run() is run
    events = delivered(dt, ingest)
    assert {e["run_id"] for e in events} == {run.run_id}
    assert {e["agent_id"] for e in events} == {"outer-agent"}
    assert [e["event_type"] for e in events].count("run.started") == 1
    assert events[-1]["event_type"] == "run.completed"
    assert sum(e["event_type"] == "tool.called" for e in events) == 2
    well_formed(events)


def test_a_sub_agent_in_a_tool_is_a_child_run(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    inner = agent([[call("search", query="deep")], "inner answer"], system_prompt="researcher")

    @tool
    def research(topic: str) -> str:
        """Delegate to the research agent."""
        return inner.invoke(question(topic))["messages"][-1].content

    agent([[call("research", topic="paris")], "outer answer"], [research]).invoke(
        question(), config={"callbacks": [handler]}
    )
    runs = list(runs_of(delivered(dt, ingest, runs=2)).values())
    assert len(runs) == 2
    outer, child = sorted(runs, key=lambda r: r[0]["parent_run_id"] is not None)
    for run in runs:
        well_formed(run)
    outer_id = outer[0]["run_id"]
    assert {e["parent_run_id"] for e in outer} == {None}
    assert {e["parent_run_id"] for e in child} == {outer_id}
    assert child[0]["payload"]["input_hash"] == dt.hasher.value("paris")
    assert child[0]["payload"]["tools"] == ["search", "calculator"]
    assert [e["payload"]["tool_name"] for e in outer if e["event_type"] == "tool.called"] == ["research"]
    assert [e["payload"]["tool_name"] for e in child if e["event_type"] == "tool.called"] == ["search"]
    # The child run ended inside the outer run's tool call.
    child_end = child[-1]["timestamp"]
    research_done = next(e for e in outer if e["event_type"] == "tool.responded")["timestamp"]
    assert child_end <= research_done
    assert handler.translator.live() == (0, 0)


def test_current_run_inside_tools_and_models(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    seen: list[Any] = []

    @tool
    def probe(query: str) -> str:
        """Records the current run."""
        seen.append(dunetrace.get_current_run())
        return "ok"

    class Probing(ScriptedChatModel):
        def _generate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
            run = dunetrace.get_current_run()
            seen.append((run, in_framework_model_call()))
            return super()._generate(messages, *args, **kwargs)

    from langchain.agents import create_agent

    graph = create_agent(Probing(script=[[call("probe", query="q")], "done"]), [probe])
    assert dunetrace.get_current_run() is None
    graph.invoke(question(), config={"callbacks": [handler]})
    assert dunetrace.get_current_run() is None  # nothing leaks into the caller

    run = seen[0][0]
    assert isinstance(run, dunetrace.Run)
    assert seen == [(run, True), run, (run, True)]
    assert not in_framework_model_call() and run.finished
    events = delivered(dt, ingest)
    assert {e["run_id"] for e in events} == {run.run_id}


def test_model_call_marked_on_the_users_run(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    seen: list[bool] = []

    class Probing(ScriptedChatModel):
        def _generate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
            seen.append(in_framework_model_call())
            return super()._generate(messages, *args, **kwargs)

    with dt.run("mine"):
        Probing(script=["x"]).invoke("hi", config={"callbacks": [handler]})
        assert not in_framework_model_call()
    assert seen == [True]


def test_parallel_tool_calls_pair_by_their_own_ids(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    import time

    @tool
    def slow(seconds: float) -> str:
        """Sleeps."""
        time.sleep(seconds)
        return f"slept {seconds}"

    parallel = [call("slow", seconds=0.15), call("slow", seconds=0.0), call("search", query="x")]
    agent([parallel, "done"], [slow, search]).invoke(question(), config={"callbacks": [handler]})
    events = delivered(dt, ingest)
    called = {e["step_index"]: e["payload"] for e in events if e["event_type"] == "tool.called"}
    responded = {e["step_index"]: e["payload"] for e in events if e["event_type"] == "tool.responded"}
    assert sorted(called) == sorted(responded) and len(called) == 3
    by_args = {p["args_hash"]: step for step, p in called.items()}
    long_step = by_args[dt.hasher.value({"seconds": 0.15})]
    short_step = by_args[dt.hasher.value({"seconds": 0.0})]
    assert responded[long_step]["latency_ms"] >= 140
    assert responded[short_step]["latency_ms"] < 140
    assert responded[long_step]["output_length"] == len("slept 0.15")
    assert {called[s]["tool_name"] for s in called} == {"slow", "search"}
    assert events[-1]["event_type"] == "run.completed"


def test_parallel_model_calls_pair_by_their_own_ids(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    import time

    from langchain_core.runnables import RunnableParallel

    class Slow(ScriptedChatModel):
        delay: float = 0.0

        def _generate(self, *args: Any, **kwargs: Any) -> Any:
            time.sleep(self.delay)
            return super()._generate(*args, **kwargs)

    fast = Slow(script=["fast"], model_name="fast-model")
    slow = Slow(script=["slow reply"], model_name="slow-model", delay=0.15)
    RunnableParallel(a=fast, b=slow).invoke("hi", config={"callbacks": [handler]})
    events = delivered(dt, ingest)
    well_formed(events)
    model_at = {e["step_index"]: e["payload"]["model"] for e in events if e["event_type"] == "llm.called"}
    responded = {model_at[e["step_index"]]: e["payload"] for e in events if e["event_type"] == "llm.responded"}
    assert responded["slow-model"]["latency_ms"] >= 140
    assert responded["fast-model"]["latency_ms"] < 140
    assert responded["slow-model"]["output_length"] == len("slow reply")


def test_a_completion_llm_with_llm_output_tokens(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    from langchain_core.language_models.llms import BaseLLM
    from langchain_core.outputs import Generation, LLMResult

    class Completion(BaseLLM):
        @property
        def _llm_type(self) -> str:
            return "completion"

        def _generate(self, prompts: list[str], stop: Any = None, run_manager: Any = None, **kw: Any) -> LLMResult:
            return LLMResult(
                generations=[[Generation(text="completed text", generation_info={"finish_reason": "length"})]],
                llm_output={"token_usage": {"prompt_tokens": 7, "completion_tokens": 3}, "model_name": "c-1"},
            )

    assert Completion().invoke("complete this", config={"callbacks": [handler]}) == "completed text"
    events = delivered(dt, ingest)
    well_formed(events)
    (responded,) = [e["payload"] for e in events if e["event_type"] == "llm.responded"]
    assert (responded["prompt_tokens"], responded["completion_tokens"]) == (7, 3)
    assert responded["finish_reason"] == "length"
    assert responded["output_length"] == len("completed text")
    assert events[0]["payload"]["input_hash"] == dt.hasher.value("complete this")
