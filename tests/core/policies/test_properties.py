"""Property tests of the engine: whatever the agent's pattern of calls, a
stop after n tool calls lets exactly n through and raises at the next call,
and nothing ever raises without a stop policy."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from dunetrace import Dunetrace, PolicyViolation

calls = st.lists(st.sampled_from(["llm", "tool", "retrieval", "signal"]), min_size=1, max_size=40)


@settings(max_examples=80, deadline=None)
@given(limit=st.integers(min_value=1, max_value=8), pattern=calls)
def test_stop_lets_exactly_n_tool_calls_through(limit: int, pattern: list[str]) -> None:
    dt = Dunetrace(export="none")
    dt.add_policy("cap", when={"tool_calls": limit}, then="stop")
    made = 0
    raised_at = None
    try:
        with dt.run("agent") as run:
            for index, kind in enumerate(pattern):
                try:
                    if kind == "llm":
                        run.llm_responded(completion_tokens=1, step=run.llm_called("m", prompt_tokens=3))
                    elif kind == "tool":
                        run.tool_called("t", {"i": index})
                        made += 1
                    elif kind == "retrieval":
                        run.retrieval_responded("docs", 1, step=run.retrieval_called("docs", "q"))
                    else:
                        run.external_signal("note", source="test")
                except PolicyViolation:
                    raised_at = index
                    raise
    except PolicyViolation:
        pass
    finally:
        dt.shutdown(timeout=1)
    assert made == min(limit, pattern.count("tool"))
    later_calls = [
        i for i, kind in enumerate(pattern) if kind in ("llm", "tool") and i > _index_of_nth_tool(pattern, limit)
    ]
    if pattern.count("tool") >= limit and later_calls:
        assert raised_at == later_calls[0]  # the first tool or model call after the limit
    else:
        assert raised_at is None


def _index_of_nth_tool(pattern: list[str], n: int) -> int:
    seen = 0
    for index, kind in enumerate(pattern):
        seen += kind == "tool"
        if seen == n:
            return index
    return len(pattern)


@settings(max_examples=40, deadline=None)
@given(pattern=calls, limit=st.integers(min_value=1, max_value=5))
def test_without_a_stop_policy_nothing_raises(pattern: list[str], limit: int) -> None:
    dt = Dunetrace(export="none")
    dt.add_policy("log", when={"tool_calls": limit}, then="log")
    dt.add_policy("switch", when={"steps": limit}, then={"switch_model": "small"})
    dt.add_policy("nudge", when={"tokens": limit}, then={"inject_prompt": "x"})
    try:
        with dt.run("agent") as run:
            for kind in pattern:
                if kind == "llm":
                    run.llm_responded(completion_tokens=1, step=run.llm_called("m", prompt_tokens=3))
                elif kind == "tool":
                    run.tool_called("t")
                elif kind == "retrieval":
                    run.retrieval_called("docs")
                else:
                    run.external_signal("note")
        triggered = [s.evidence["policy"] for s in run.signals]
        assert len(triggered) == len(set(triggered))  # each policy at most once per run
        assert ("log" in triggered) == (pattern.count("tool") >= limit)
    finally:
        dt.shutdown(timeout=1)
