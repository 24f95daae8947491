"""JSON for the collector: orjson when it is installed (the ``collector``
extra brings it; it parses and writes events several times faster), the
standard library otherwise. Both refuse what JSON does not allow: NaN,
infinities (``1e999``), lone surrogates, invalid UTF-8."""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["FAST", "EncodeError", "dumps", "loads"]


class JSONError(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise JSONError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise JSONError(f"number {text[:40]} is out of range")
    return value


_encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _std_loads(data: bytes) -> Any:
    value = json.loads(data, parse_constant=_reject_constant, parse_float=_finite_float)
    return value


def _std_dumps(value: Any) -> str:
    return _encode(value)


try:
    import orjson
except ImportError:  # pragma: no cover - depends on the environment
    FAST = False
    #: What ``dumps`` raises for a value it cannot write (nested too deep).
    EncodeError: tuple[type[Exception], ...] = (ValueError, RecursionError)
    loads = _std_loads
    dumps = _std_dumps
else:
    FAST = True
    #: What ``dumps`` raises for a value it cannot write: nested deeper than
    #: 254 levels, or an integer past 64 bits.
    EncodeError = (orjson.JSONEncodeError,)

    def loads(data: bytes) -> Any:
        return orjson.loads(data)

    def dumps(value: Any) -> str:
        return orjson.dumps(value).decode("utf-8")
