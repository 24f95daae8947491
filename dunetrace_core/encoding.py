"""Request bodies as bytes: orjson when it is installed (about ten times
faster here), the standard library otherwise. orjson is not a dependency;
the collector extra happens to bring it.

Every body this module writes is valid for our collector and the upstream
backend alike. What callers and plugins may put in a payload and JSON (or
PostgreSQL's JSONB) cannot hold is made valid here, at the boundary: a lone
surrogate becomes U+FFFD, as does NUL; NaN and infinities become null; an
integer past 64 bits becomes a float (or null); keys become strings; bytes
are decoded as UTF-8 with replacement; nesting past ``MAX_DEPTH``, cycles and
objects whose ``__str__`` raises become short placeholders. The common case,
a body orjson writes as is, pays for one byte search.
"""

from __future__ import annotations

import json
import math
from typing import Any

__all__ = ["ENCODER", "MAX_DEPTH", "clean", "encode_body"]

try:
    import orjson
except ImportError:  # the standard library does it, slower
    orjson = None  # type: ignore[assignment]

ENCODER = "orjson" if orjson is not None else "json"

#: Levels of nesting kept in a body (the body, events and payload included);
#: deeper values are replaced. Our collector stores at most 250.
MAX_DEPTH = 64

_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1

_stdlib = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def _text(value: str) -> str:
    """A string every JSON parser and JSONB takes: valid UTF-8, no NUL."""
    if type(value) is not str:
        value = str.__str__(value)  # a subclass's own __str__ is never called
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Pairs of surrogates join into their character; lone ones are replaced.
        value = value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    return value


def _leaf(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return bool(value) if value is not None else None
    if isinstance(value, int):
        value = int.__index__(value)
        if _INT_MIN <= value <= _INT_MAX:
            return value
        try:
            return float(value)
        except OverflowError:
            return None
    if isinstance(value, float):
        value = float.__float__(value)
        return value if math.isfinite(value) else None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _text(bytes(value).decode("utf-8", "replace"))
    try:
        text = str(value)
    except Exception:
        return f"<unprintable {_text(type(value).__name__)}>"
    return _text(text) if isinstance(text, str) else f"<unprintable {_text(type(value).__name__)}>"


def _key(key: Any) -> str:
    if isinstance(key, str):
        return _text(key)
    if key is None:
        return "null"
    if isinstance(key, bool):
        return "true" if key else "false"
    value = _leaf(key)
    return value if isinstance(value, str) else json.dumps(value)


def clean(value: Any, depth: int = 0, path: frozenset[int] = frozenset()) -> Any:
    """``value`` rebuilt from what JSON holds; see the module docstring."""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        if depth >= MAX_DEPTH:
            return "<nested too deep>"
        if id(value) in path:
            return "<recursive>"
        path = path | {id(value)}
        try:
            if isinstance(value, dict):
                return {_key(k): clean(v, depth + 1, path) for k, v in list(value.items())}
            return [clean(v, depth + 1, path) for v in list(value)]
        except Exception:  # changed while read (another thread), a broken subclass
            return f"<unreadable {_text(type(value).__name__)}>"
    try:
        return _leaf(value)
    except Exception:
        return f"<unprintable {_text(type(value).__name__)}>"


def _encode_stdlib(body: dict[str, Any]) -> bytes:
    return _stdlib(clean(body)).encode("utf-8")


if orjson is not None:
    _dumps = orjson.dumps

    def _fallback(value: Any) -> Any:
        raise TypeError  # not JSON as is: the body is cleaned

    def encode_body(body: dict[str, Any]) -> bytes:
        """The body as UTF-8 JSON that every receiver takes."""
        try:
            data = _dumps(body, default=_fallback)
        except (TypeError, ValueError, RecursionError):  # JSONEncodeError is a TypeError
            pass
        else:
            # orjson writes NaN as null and refuses lone surrogates, deep
            # nesting and huge ints; NUL it writes, and JSONB refuses it.
            if b"\\u0000" not in data:
                return data
        return _dumps(clean(body))

else:
    encode_body = _encode_stdlib
