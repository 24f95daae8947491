"""In-process hashing of everything that is content.

The privacy promise of the wire contract: prompts, completions, tool arguments
and outputs, queries, documents and error messages never leave the process.
They are reduced here to a SHA-256 hex digest. Equal inputs give equal
digests (the loop detectors compare them), so structured values are first
written as canonical JSON: sorted keys, no whitespace, a stable text for
values JSON cannot hold.

With a hash key (``DUNETRACE_HASH_KEY`` or ``Dunetrace(hash_key=...)``) the
digest is HMAC-SHA256 instead, so the hash of a short value ("yes", a user id)
cannot be reversed by hashing guesses.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

__all__ = ["Hasher", "canonical_json"]


def _fallback(value: Any) -> Any:
    # Objects JSON cannot hold: pydantic models, dataclasses, sets, bytes.
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return dump()
        except Exception:
            pass
    if isinstance(value, (set, frozenset)):
        return sorted(map(repr, value))
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    data = getattr(value, "__dict__", None)
    if isinstance(data, dict):
        return {"__type__": type(value).__name__, **data}
    return repr(value)


# Built once: json.dumps() with options builds a new encoder on every call.
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_fallback).encode


def canonical_json(value: Any) -> str:
    """The one text a structured value hashes as: equal values, equal text.

    A JSON string holding an object (CrewAI hands tool args either way) is
    parsed first, so ``'{"q": 1}'`` and ``{"q": 1}`` give the same text.
    """
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
            try:
                value = json.loads(stripped)
            except ValueError:
                return value
        else:
            return value
    try:
        return _encode(value)
    except (TypeError, ValueError):
        # Keys that do not sort (mixed types) or circular values.
        return repr(value)


class Hasher:
    """Turns content into a hex digest; the raw value is never kept."""

    __slots__ = ("_key",)

    def __init__(self, key: str | bytes | None = None) -> None:
        if isinstance(key, str):
            key = key.encode("utf-8")
        self._key = key or None

    @property
    def keyed(self) -> bool:
        return self._key is not None

    def text(self, text: str) -> str:
        data = text.encode("utf-8", "surrogatepass")
        if self._key is None:
            return hashlib.sha256(data).hexdigest()
        return hmac.new(self._key, data, hashlib.sha256).hexdigest()

    def value(self, value: Any) -> str | None:
        """Digest of any content value; None stays None (nothing to hash)."""
        if value is None:
            return None
        return self.text(canonical_json(value))

    def error(self, error: BaseException | str | None) -> str | None:
        """Digest of an error: its class and message, never sent raw."""
        if error is None:
            return None
        if isinstance(error, BaseException):
            return self.text(f"{type(error).__name__}: {error}")
        return self.text(str(error))
