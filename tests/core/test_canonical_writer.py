"""The canonical JSON writer made once gives the text the standard encoder
gives, for every value the hashes are taken of.

``hashing._encode`` calls one C encoder built at import, without the
circular-reference check; these tests hold it to ``json.JSONEncoder(...)
.encode`` with the same options (a new encoder per call, the check on) on
generated values, and to the same outcome on circular and too-deep ones.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from dunetrace.hashing import _encode, _fallback, canonical_json

reference = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_fallback).encode


class Point:
    def __init__(self, x: Any, y: Any) -> None:
        self.x = x
        self.y = y


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and the infinities included: written as NaN, Infinity
    | st.text()  # lone surrogates included
    | st.binary(max_size=8)
    | st.frozensets(st.integers(), max_size=3)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=6), inner, max_size=4)
        | st.builds(Point, inner, inner)
    ),
    max_leaves=20,
)


def outcome(write: Any, value: Any) -> tuple[str, str]:
    try:
        return "text", write(value)
    except Exception as exc:
        return "error", type(exc).__name__


@settings(max_examples=400)
@given(values)
def test_the_writer_made_once_writes_what_the_standard_encoder_writes(value: Any) -> None:
    assert outcome(_encode, value) == outcome(reference, value)


def test_mixed_keys_fail_alike() -> None:
    # Keys that do not sort: canonical_json hashes the repr instead, both ways.
    assert outcome(_encode, {1: "a", "b": 2}) == outcome(reference, {1: "a", "b": 2}) == ("error", "TypeError")


def test_a_circular_value_is_written_as_before() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    assert outcome(_encode, loop) == ("error", "ValueError")  # the check's "Circular reference detected"
    assert canonical_json(loop) == repr(loop)
    node = Point(1, None)
    node.y = node
    assert outcome(_encode, node) == outcome(reference, node)
    assert canonical_json({"node": node}) == repr({"node": node})


def test_a_value_nested_past_the_limit_is_a_placeholder_as_before() -> None:
    deep: list[Any] = []
    inner = deep
    for _ in range(5000):
        inner.append([])
        inner = inner[0]
    assert outcome(_encode, deep) == outcome(reference, deep) == ("error", "RecursionError")
    assert canonical_json(deep) == "<dunetrace: unreadable list>"


def test_one_value_shared_twice_is_no_cycle() -> None:
    shared = {"k": [1, 2]}
    assert _encode([shared, shared, {"again": shared}]) == reference([shared, shared, {"again": shared}])
