"""The translator on its own: plain values in, run events out, no LangChain."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from dunetrace import Dunetrace
from dunetrace.integrations.langchain.translator import Translator, is_control_flow

from .conftest import delivered, shape, well_formed


def test_imports_no_framework() -> None:
    code = (
        "import sys, json\n"
        "import dunetrace.integrations.langchain.translator\n"
        "print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in ('langchain', 'langchain_core'))))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == []


def test_plain_ids_and_values(dt: Dunetrace, ingest: Any) -> None:
    t = Translator(dt, "plain")
    t.chain_start(1, None, "graph", "what is 6*7?")
    t.chain_start(2, 1, "node", None)
    t.llm_start(3, 2, "model", "m-1", ["calc"], "be brief", None)
    t.llm_end(3, completion_tokens=4, prompt_tokens=9, finish_reason="tool_calls", output="calc(6*7)", final=False)
    t.chain_end(2)
    t.tool_start(4, 1, "calc", {"expression": "6*7"})
    t.tool_end(4, output="42")
    t.llm_start(5, 1, "model", "m-1", ["calc"], "be brief", None)
    t.llm_end(5, finish_reason="stop", output="42")
    t.chain_end(1)
    events = delivered(dt, ingest)
    well_formed(events)
    assert shape(events) == [
        ("run.started", 0, None),
        ("llm.called", 1, None),
        ("llm.responded", 1, None),
        ("tool.called", 2, "calc"),
        ("tool.responded", 2, "calc"),
        ("llm.called", 3, None),
        ("llm.responded", 3, None),
        ("run.completed", 3, "final_answer"),
    ]
    assert events[0]["payload"] == {
        "model": "m-1",
        "tools": ["calc"],
        "input_hash": dt.hasher.value("what is 6*7?"),
    }
    assert t.live() == (0, 0)


def test_control_flow_is_found_by_class_name() -> None:
    class GraphBubbleUp(Exception):
        pass

    class GraphInterrupt(GraphBubbleUp):
        pass

    assert is_control_flow(GraphInterrupt())
    assert not is_control_flow(ValueError())
    assert not is_control_flow(None)


def test_an_interrupted_tool_is_no_failure(dt: Dunetrace, ingest: Any) -> None:
    class GraphBubbleUp(Exception):
        pass

    class GraphInterrupt(GraphBubbleUp):
        pass

    t = Translator(dt, "plain")
    t.chain_start("root", None, "graph", "x")
    t.tool_start("tool", "root", "approve", {"amount": 3})
    t.tool_end("tool", failed=True, error=GraphInterrupt())
    t.chain_end("root")
    events = delivered(dt, ingest)
    # The tool the interrupt cut is answered, as no failure (the resuming run calls it again).
    assert [e["event_type"] for e in events] == ["run.started", "tool.called", "tool.responded", "run.completed"]
    assert events[2]["payload"]["success"] is True
    assert events[-1]["payload"]["exit_reason"] == "interrupted"
