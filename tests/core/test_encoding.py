"""Request bodies are valid JSON the ingest API accepts, whichever encoder
is installed."""

from __future__ import annotations

import json

import pytest

from dunetrace import encoding


class Opaque:
    def __str__(self) -> str:
        return "opaque"


BODY = {
    "api_key": "",
    "agent_id": "a",
    "events": [
        {"payload": {"latency_ms": float("nan"), "score": float("inf"), 3: "int key", "obj": Opaque(), "é": "ü"}}
    ],
}
EXPECTED = {"latency_ms": None, "score": None, "3": "int key", "obj": "opaque", "é": "ü"}


@pytest.mark.parametrize("encode", [encoding.encode_body, encoding._encode_stdlib], ids=["default", "stdlib"])
def test_body_is_strict_json_with_non_finite_numbers_as_null(encode) -> None:
    data = encode(BODY)
    assert isinstance(data, bytes)
    decoded = json.loads(data, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))
    assert decoded["events"][0]["payload"] == EXPECTED


def test_encoder_is_named() -> None:
    assert encoding.ENCODER in ("orjson", "json")


# -- every body is valid, whatever a caller put in it --------------------------

import orjson  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dunetrace.collector.decode import decode_batch  # noqa: E402
from dunetrace.collector.schema import parse_json, read_batch  # noqa: E402

# Every code point, lone surrogates and NUL included.
_text = st.text(st.characters(codec=None, categories=None), max_size=20)
_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(allow_nan=True, allow_infinity=True),
    _text,
    st.binary(max_size=10),
    st.builds(Opaque),
)
_key = st.one_of(_text, st.integers(), st.floats(), st.booleans(), st.none(), st.tuples(st.integers()))
_value = st.recursive(
    _leaf,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_key, inner, max_size=4)),
    max_leaves=20,
)


def _body(agent: str, model: str, payload: dict) -> dict:
    return {
        "api_key": "",
        "agent_id": agent,
        "events": [
            {
                "event_type": "llm.called",
                "run_id": "r",
                "agent_id": agent,
                "agent_version": "v",
                "step_index": 1,
                "timestamp": 1.5,
                "payload": {"model": model, **payload},
                "parent_run_id": None,
            }
        ],
    }


def _strict_loads(data: bytes) -> object:
    return json.loads(data, parse_constant=lambda c: pytest.fail(f"{c} is not JSON"))


@pytest.mark.parametrize("encode", [encoding.encode_body, encoding._encode_stdlib], ids=["default", "stdlib"])
@settings(max_examples=300, deadline=None)
@given(agent=_text.filter(bool), model=_text, meta=st.dictionaries(_key, _value, max_size=5))
def test_every_body_is_taken_by_every_parser_and_the_collector(encode, agent, model, meta) -> None:
    data = encode(_body("a" + agent, model, meta))
    _strict_loads(data)
    orjson.loads(data)  # refuses lone surrogates, which json.loads lets through
    # PostgreSQL's JSONB (the upstream backend) refuses NUL; orjson.loads lone surrogates
    text = json.dumps(_strict_loads(data), ensure_ascii=False)
    assert "\x00" not in text and "\\u0000" not in text.replace("\\\\", "")
    read_batch(parse_json(data))  # the collector's checks, which name a 422's field
    assert decode_batch(data) is not None  # and its fast path takes it as valid


def test_hostile_values_are_made_valid_with_placeholders() -> None:
    class Broken(str):
        def __str__(self) -> str:
            raise RuntimeError("broken __str__")

    class NoStr:
        def __str__(self) -> str:
            raise RuntimeError("no")

    deep: list = []
    node = deep
    for _ in range(100_000):
        node.append([])
        node = node[0]
    loop: dict = {}
    loop["me"] = loop
    payload = {"s": Broken("kept"), "o": NoStr(), "deep": deep, "loop": loop, "big": 10**400, 5: b"\xffok"}
    for encode in (encoding.encode_body, encoding._encode_stdlib):
        got = _strict_loads(encode(_body("a", "m\ud800", payload)))["events"][0]["payload"]
        assert got["model"] == "m\ufffd" and got["s"] == "kept" and got["o"] == "<unprintable NoStr>"
        assert got["loop"] == {"me": "<recursive>"} and got["big"] is None and got["5"] == "\ufffdok"
        assert "<nested too deep>" in json.dumps(got["deep"])
