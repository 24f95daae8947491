"""The LangChain policy examples do what their docstrings say, on a real
ingest server."""

from __future__ import annotations

from dunetrace import Dunetrace
from dunetrace.examples import policy_inject_prompt_agent, policy_switch_model_agent


def models_called(ingest) -> list[str]:
    return [e["payload"].get("model") for e in ingest.events if e["event_type"] == "llm.called"]


def test_the_switch_model_example_moves_to_the_small_model(dt: Dunetrace, ingest) -> None:
    assert policy_switch_model_agent.main(dt) == ["All 5 items are in stock (answered by small-model)."]
    assert dt.flush(5)
    assert models_called(ingest) == ["large-model"] * 3 + ["small-model"] * 3


def test_the_inject_prompt_example_breaks_the_loop(dt: Dunetrace, ingest) -> None:
    assert policy_inject_prompt_agent.main(dt) == ["Order A-1042 is still processing (checked 3 times)."]
    assert dt.flush(5)
    assert sum(e["event_type"] == "tool.called" for e in ingest.events) == 3
    assert ingest.events[-1]["event_type"] == "run.completed"
    assert b"Stop polling" not in ingest.raw()
