"""The detector library's table, as the README shows it, and its public
names."""

from __future__ import annotations

import re
from pathlib import Path

import dunetrace.detectors as detectors
from dunetrace.detectors import DETECTORS, DetectorSettings, RunJudge

README = Path(__file__).resolve().parents[2] / "README.md"
WHERE = {"live + collector": "live", "collector": "collector", "live (in-process)": "in-process"}


def test_readme_table_is_the_library_table() -> None:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Live detection") :]
    rows = re.findall(r"^\| ([A-Z_]+) \| (.+?) \| (.+?) \| ([A-Z /]+) \| (.+?) \|$", section, re.MULTILINE)
    assert [r[0] for r in rows] == [d.name for d in DETECTORS]
    for (name, condition, defaults, severity, where), info in zip(rows, DETECTORS, strict=True):
        assert condition == info.condition, name
        assert severity.split(" /")[0] == info.severity, name
        assert WHERE[where] == info.where, name
        for key in info.defaults:
            assert f"`{key}`" in defaults, (name, key)


def test_public_names_are_sorted_and_importable() -> None:
    assert list(detectors.__all__) == sorted(detectors.__all__)
    for name in detectors.__all__:
        assert getattr(detectors, name) is not None


def test_a_detector_turned_off_never_fires() -> None:
    every = {"default": {d.name: {"enabled": False} for d in DETECTORS}}
    judge = RunJudge(DetectorSettings.from_mapping(every).for_agent("a"), agent_id="a", ancestors=["a", "a"])
    events = [("run.started", 0, {"tools": ["t"], "injection_signal": {"match_count": 3}})]
    for step in range(1, 80):
        events += [
            ("tool.called", step, {"tool_name": "t", "args_length": 10**6}),
            ("tool.responded", step, {"tool_name": "t", "success": False, "latency_ms": 1e9}),
        ]
    events.append(("run.completed", 79, {"exit_reason": "final_answer", "dropped_events": 5}))
    assert [name for e in events for name in judge.observe(*e)] == []
    assert judge.fired == {}
