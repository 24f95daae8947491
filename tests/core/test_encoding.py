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
