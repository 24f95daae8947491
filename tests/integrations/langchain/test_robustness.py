"""Odd inputs, garbage callbacks, our own bugs: the agent's result never
changes and nothing reaches it. Per-run state stays bounded."""

from __future__ import annotations

import gc
import logging
import uuid
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, ChatMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, Generation, LLMResult
from langchain_core.runnables import RunnableLambda

from dunetrace import Dunetrace, get_current_run, log
from dunetrace.integrations.langchain import DunetraceCallbackHandler

from .conftest import delivered, runs_of, shape, well_formed
from .fakes import ScriptedChatModel, agent, call, question

SCRIPT = [[call("search", query="a")], "done"]


def test_string_list_and_dict_inputs(dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler) -> None:
    model = ScriptedChatModel(script=["ok"])
    chain = RunnableLambda(lambda x: x) | model
    chain.invoke("plain string", config={"callbacks": [handler]})
    chain.invoke([SystemMessage("sys"), HumanMessage("from a list")], config={"callbacks": [handler]})
    (RunnableLambda(lambda d: d["input"]) | model).invoke({"input": "from a dict"}, config={"callbacks": [handler]})
    role_dict = {"messages": [{"role": "user", "content": "from a role dict"}]}
    agent(SCRIPT).invoke(role_dict, config={"callbacks": [handler]})
    runs = list(runs_of(delivered(dt, ingest, runs=4)).values())
    assert [r[0]["payload"]["input_hash"] for r in runs] == [
        dt.hasher.value(text) for text in ("plain string", "from a list", "from a dict", "from a role dict")
    ]
    for run in runs:
        well_formed(run)


def test_unknown_message_types_and_content_blocks(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    class Wizard(BaseMessage):
        type: str = "wizard"

    class Blocks(ScriptedChatModel):
        def _generate(self, messages: Any, *args: Any, **kwargs: Any) -> Any:
            message = AIMessage(
                content=[
                    {"type": "text", "text": "two "},
                    {"type": "text", "text": "blocks"},
                    {"type": "image", "url": "x"},
                ]
            )
            return type(super()._generate(messages, *args, **kwargs))(generations=[ChatGeneration(message=message)])

    messages = [ChatMessage(role="oracle", content="??"), Wizard(content="abracadabra"), HumanMessage("hi")]
    result = Blocks(script=[]).invoke(messages, config={"callbacks": [handler]})
    assert result.content[0]["text"] == "two "
    events = delivered(dt, ingest)
    well_formed(events)
    responded = next(e["payload"] for e in events if e["event_type"] == "llm.responded")
    assert responded["output_length"] == len("two blocks")
    assert "finish_reason" not in responded  # not given by the model, not invented


def test_the_agents_result_is_unchanged(handler: DunetraceCallbackHandler) -> None:
    script = [[call("search", query="a")], [call("calculator", expression="1")], "final"]
    plain = agent(script).invoke(question())
    seen = agent(script).invoke(question(), config={"callbacks": [handler]})
    assert [(m.type, m.content) for m in seen["messages"]] == [(m.type, m.content) for m in plain["messages"]]


RUN_ID = uuid.uuid4()
GARBAGE: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("on_chain_start", (None, None), {"run_id": None}),
    ("on_chain_start", (42, object()), {"run_id": "not-a-uuid", "parent_run_id": ["unhashable"]}),
    ("on_chain_start", ({"name": 3, "id": "x"}, {"messages": "oops"}), {"run_id": RUN_ID, "name": None}),
    (
        "on_chat_model_start",
        (None, "not messages"),
        {"run_id": uuid.uuid4(), "invocation_params": "x", "metadata": ["x"]},
    ),
    (
        "on_chat_model_start",
        ({"kwargs": None}, [[1, None, ("system",)]]),
        {"run_id": uuid.uuid4(), "invocation_params": {"tools": [1, {}]}},
    ),
    ("on_llm_start", (None, None), {"run_id": uuid.uuid4(), "parent_run_id": RUN_ID}),
    ("on_llm_end", (object(),), {"run_id": uuid.uuid4()}),
    (
        "on_llm_end",
        (LLMResult(generations=[[Generation(text="x")]], llm_output={"token_usage": "many"}),),
        {"run_id": uuid.uuid4()},
    ),
    ("on_llm_end", (LLMResult(generations=[]),), {"run_id": RUN_ID}),
    ("on_llm_error", ("not an exception",), {"run_id": uuid.uuid4()}),
    ("on_tool_start", (None, None), {"run_id": uuid.uuid4(), "parent_run_id": uuid.uuid4(), "inputs": object()}),
    ("on_tool_end", (ToolMessage(content=[1, 2], tool_call_id="x", status="error"),), {"run_id": uuid.uuid4()}),
    ("on_tool_end", (None,), {}),
    ("on_tool_error", (None,), {"run_id": {}}),
    ("on_retriever_start", (None, {"query": 1}), {"run_id": uuid.uuid4(), "parent_run_id": RUN_ID}),
    ("on_retriever_end", ("not documents",), {"run_id": uuid.uuid4()}),
    ("on_retriever_error", (3,), {"run_id": uuid.uuid4()}),
    ("on_chain_error", ("boom",), {"run_id": RUN_ID}),
    ("on_chain_end", (None,), {"run_id": uuid.uuid4()}),
]


@pytest.mark.parametrize("strict", [True, False], ids=["strict", "lenient"])
def test_garbage_callbacks_raise_nothing(
    strict: bool, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    # Strict: nothing is even an internal error (all handled on purpose).
    log.strict = strict
    for name, args, kwargs in GARBAGE:
        assert getattr(handler, name)(*args, **kwargs) is None
    # Garbage starts with no end open roots that stay current, as an
    # abandoned call would. Their ends (newest first, as LangChain sends
    # them) close them and give the context back as it was.
    started = [k["run_id"] for n, _, k in GARBAGE if n.endswith("_start") and isinstance(k["run_id"], (uuid.UUID, str))]
    for run_id in reversed(started):
        handler.on_chain_end(None, run_id=run_id)
    assert get_current_run() is None
    assert handler.translator.live() == (0, 0)
    # The handler still works for a real agent afterwards.
    assert agent(SCRIPT).invoke(question("after"), config={"callbacks": [handler]})["messages"][-1].content == "done"
    dt.flush()
    after = dt.hasher.value("after")
    (run,) = [r for r in runs_of(ingest.events).values() if r[0]["payload"].get("input_hash") == after]
    well_formed(run)


def test_an_internal_error_never_reaches_the_agent(
    dt: Dunetrace, handler: DunetraceCallbackHandler, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    log.strict = False

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug of ours")

    for method in ("chain_start", "llm_start", "llm_end", "tool_start", "tool_end"):
        monkeypatch.setattr(handler.translator, method, broken)
    with caplog.at_level(logging.ERROR, logger="dunetrace"):
        result = agent(SCRIPT).invoke(question(), config={"callbacks": [handler]})
    assert result["messages"][-1].content == "done"
    logged = [r.getMessage() for r in caplog.records if r.name == "dunetrace"]
    assert any("langchain.on_chain_start" in m and "a bug of ours" in m for m in logged)
    assert len([m for m in logged if "on_chain_start" in m]) == 1  # once per cause


_HI = [HumanMessage("hi")]
_REPLY = LLMResult(
    generations=[
        [
            ChatGeneration(
                message=AIMessage(
                    content="",
                    tool_calls=[{"name": "search", "args": {"q": 1}, "id": "c"}],
                    usage_metadata={"input_tokens": 5, "output_tokens": 1, "total_tokens": 6},
                )
            )
        ]
    ]
)
_RESULT = ToolMessage(content="r", tool_call_id="c")


def _one_run(handler: DunetraceCallbackHandler) -> None:
    """One agent turn as LangChain reports it, with LangChain's own objects."""
    root, node, llm, tool = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    handler.on_chain_start(None, {"messages": _HI}, run_id=root, name="LangGraph")
    handler.on_chain_start(None, {}, run_id=node, parent_run_id=root, name="model")
    handler.on_chat_model_start(
        {"name": "M"}, [_HI], run_id=llm, parent_run_id=node, invocation_params={"model": "m", "tools": ["search"]}
    )
    handler.on_llm_end(_REPLY, run_id=llm, parent_run_id=node)
    handler.on_chain_end({}, run_id=node, parent_run_id=root)
    handler.on_tool_start({"name": "search"}, "{'q': 1}", run_id=tool, parent_run_id=root, inputs={"q": 1})
    handler.on_tool_end(_RESULT, run_id=tool, parent_run_id=root)
    handler.on_chain_end({}, run_id=root)


def test_state_is_evicted_over_ten_thousand_runs(ingest: Any) -> None:
    # Events are not the point here: a disabled client keeps the test fast.
    dt = Dunetrace(endpoint=ingest.url, enabled=False)
    handler = DunetraceCallbackHandler(dt, agent_id="long-lived")
    try:
        for _ in range(2000):
            _one_run(handler)
        gc.collect()
        before = len(gc.get_objects())
        for _ in range(8000):
            _one_run(handler)
            assert handler.translator.live() == (0, 0)
        gc.collect()
        grown = len(gc.get_objects()) - before
    finally:
        dt.shutdown()
    # Each run makes ~20 objects of ours: a leak of any of them would show
    # as tens of thousands here.
    assert grown < 1000, f"{grown} more objects after 8000 runs"


def test_abandoned_runs_are_bounded(dt: Dunetrace, ingest: Any) -> None:
    handler = DunetraceCallbackHandler(dt, agent_id="leaky", max_live_runs=10)
    for _ in range(25):  # started, never ended (a stream nobody finished)
        root = uuid.uuid4()
        handler.on_chain_start(None, "hi", run_id=root, name="LangGraph")
        handler.on_chat_model_start(None, [[HumanMessage("hi")]], run_id=uuid.uuid4(), parent_run_id=root)
    assert handler.translator.live() == (10, 20)
    ended = [e for e in delivered(dt, ingest, runs=15) if e["event_type"] == "run.completed"]
    assert len(ended) == 15
    assert {e["payload"]["exit_reason"] for e in ended} == {"abandoned"}


def test_a_call_after_its_root_ended_is_not_added_to_it(
    dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    root, child = uuid.uuid4(), uuid.uuid4()
    handler.on_chain_start(None, "hi", run_id=root)
    handler.on_chain_end(None, run_id=root)
    handler.on_tool_start({"name": "late"}, "x", run_id=child, parent_run_id=root)
    handler.on_tool_end("y", run_id=child)
    # An unknown parent makes the late call a run of its own, never an
    # event after its old run's end.
    runs = list(runs_of(delivered(dt, ingest, runs=2)).values())
    assert shape(runs[0]) == [("run.started", 0, None), ("run.completed", 0, "completed")]
    assert [e["event_type"] for e in runs[1]] == ["run.started", "tool.called", "tool.responded", "run.completed"]


@pytest.mark.parametrize("end", ["on_llm_end", "on_tool_end", "on_retriever_end"])
def test_an_end_of_another_kind_still_ends_its_root(
    end: str, dt: Dunetrace, ingest: Any, handler: DunetraceCallbackHandler
) -> None:
    root = uuid.uuid4()
    handler.on_chain_start(None, {"messages": _HI}, run_id=root, name="LangGraph")
    assert get_current_run() is not None
    getattr(handler, end)(None, run_id=root)
    assert get_current_run() is None
    assert handler.translator.live() == (0, 0)
    events = delivered(dt, ingest)
    assert [e["event_type"] for e in events] == ["run.started", "run.completed"]
