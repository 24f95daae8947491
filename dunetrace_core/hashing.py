"""In-process hashing of everything that is content.

The privacy promise of the wire contract: prompts, completions, tool arguments
and outputs, queries, documents and error messages never leave the process.
They are reduced here to a hex digest. Equal inputs give equal digests (the
loop detectors compare them), so structured values are first written as
canonical JSON: sorted keys, no whitespace, a stable text for values JSON
cannot hold.

Keyed hashes. With a secret (``DUNETRACE_HASH_KEY``, ``Dunetrace(hash_key=...)``,
or else the API key) every digest is HMAC-SHA-256 under a key derived from
that secret::

    content_key = HMAC-SHA-256(key=secret, msg=b"dunetrace content hash v1")
    digest      = HMAC-SHA-256(key=content_key, msg=canonical text, UTF-8)

Every host holding the same secret derives the same key, so equal inputs hash
equally across one project's processes; without the secret, a copy of the
stored hashes confirms no guess (a PIN, an email address, a system prompt).
The derivation keeps the raw secret out of every per-value HMAC, and its
label lets later versions change the scheme without colliding. With no
secret (dev mode) the digest is plain SHA-256, which a dictionary reverses;
the client warns once.

Hashing never raises. A value that cannot be written (its ``__repr__``,
``__eq__`` or ``__str__`` raises, it nests deeper than the recursion limit,
another thread changes it while it is read) is hashed as a placeholder naming
its type, and logged once per type and cause.
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import json
from typing import Any

from .log import warn_once

__all__ = ["KEY_LABEL", "Hasher", "canonical_json", "derive_key", "sha256_hex"]

#: What the secret is HMAC'd with to give the content key (documented above,
#: so a project can recompute its own hashes).
KEY_LABEL = b"dunetrace content hash v1"


def derive_key(secret: str | bytes) -> bytes:
    """The content-hash key of a project secret (see the module docstring)."""
    if isinstance(secret, str):
        secret = secret.encode("utf-8", "surrogatepass")
    return hmac.digest(secret, KEY_LABEL, "sha256")


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
_checked_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_fallback).encode

# The C writer JSONEncoder.encode builds on every call (1.6 us for a small
# dict; 0.5 through this one), made once, without the circular-reference
# check (markers None), so one instance serves every thread. A circular
# value recurses to the limit here and is written again with the check,
# which gives what it always gave: its ValueError, or the RecursionError of
# a value nested past the limit.
_c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)
_unchecked: Any = (
    _c_make_encoder(None, _fallback, json.encoder.encode_basestring, None, ":", ",", True, False, True)
    if _c_make_encoder is not None
    else None
)


def _encode(value: Any) -> str:
    if _unchecked is None:  # a Python without the _json accelerator
        return _checked_encode(value)
    try:
        return "".join(_unchecked(value, 0))
    except RecursionError:
        return _checked_encode(value)


def _type_name(value: Any) -> str:
    try:
        return str(type(value).__qualname__)
    except Exception:  # a metaclass with a hostile __qualname__
        return "object"


def placeholder(value: Any, error: BaseException) -> str:
    """The text hashed for a value that cannot be written; logged once per
    type and cause. Equal-typed unwritable values share it."""
    name = _type_name(value)
    cause = type(error).__name__
    warn_once(
        f"unhashable:{name}:{cause}",
        "dunetrace: a %s value could not be read for hashing (%s); a placeholder naming its type "
        "was hashed instead (the agent is unaffected)",
        name,
        cause,
    )
    return f"<dunetrace: unreadable {name}>"


def _canonical(value: Any) -> str:
    if isinstance(value, str):
        # A subclass's own methods are never called.
        text: str = value if type(value) is str else str.__str__(value)
        stripped = text.strip()
        if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
            try:
                value = json.loads(stripped)
            except ValueError:
                return text
        else:
            return text
    try:
        return _encode(value)
    except (TypeError, ValueError):
        # Keys that do not sort (mixed types) or circular values.
        return repr(value)


def canonical_json(value: Any) -> str:
    """The one text a structured value hashes as: equal values, equal text.

    A JSON string holding an object (CrewAI hands tool args either way) is
    parsed first, so ``'{"q": 1}'`` and ``{"q": 1}`` give the same text.
    Never raises: see :func:`placeholder`.
    """
    try:
        return _canonical(value)
    except RecursionError as exc:  # nested past the recursion limit: no retry
        return placeholder(value, exc)
    except RuntimeError:
        # Most likely changed by another thread while read ("changed size
        # during iteration"): once more, then give up.
        try:
            return _canonical(value)
        except Exception as exc:
            return placeholder(value, exc)
    except Exception as exc:
        return placeholder(value, exc)


# Two SHA-256 implementations give the same digests: OpenSSL's, the fastest
# on long inputs, and CPython's built-in one, which costs about 0.6 as much
# per short value. OpenSSL 3 looks its digest up anew for every
# hashlib.sha256() (its provider tables: several microseconds inside an
# agent's invoke, where those tables are out of the CPU's caches), so hash
# states are made once here and copied per value, which skips the lookup.
# The built-in module's name changed in Python 3.12 (_sha256 -> _sha2).


def _builtin_sha256_type() -> Any:
    for module in ("_sha256", "_sha2"):
        try:
            return importlib.import_module(module).sha256
        except (ImportError, AttributeError):
            continue
    return None  # a build without it: OpenSSL's for every input


_builtin_sha256: Any = _builtin_sha256_type()

#: Inputs up to this many bytes are hashed with the built-in SHA-256.
SHORT_INPUT = 2048


def _states(prefix: bytes) -> tuple[Any, Any]:
    """SHA-256 states that have taken ``prefix``: (OpenSSL's, the built-in
    one's or OpenSSL's again when there is none)."""
    long = hashlib.sha256(prefix)
    short = _builtin_sha256(prefix) if _builtin_sha256 is not None else long
    return long, short


_PLAIN = _states(b"")


def sha256_hex(data: bytes) -> str:
    """The plain SHA-256 hex digest of ``data`` (no key): what
    ``hashlib.sha256(data).hexdigest()`` gives, at less cost."""
    state = _PLAIN[len(data) <= SHORT_INPUT].copy()
    state.update(data)
    digest: str = state.hexdigest()
    return digest


class Hasher:
    """Turns content into a hex digest; the raw value is never kept."""

    __slots__ = ("_inner", "_outer", "_plain")

    def __init__(self, secret: str | bytes | None = None) -> None:
        # HMAC (RFC 2104) with its two padded-key states hashed once and
        # copied per value: the same digest as hmac.digest(), in under half
        # its time (it is paid on the agent's thread for every hashed value).
        self._plain = _PLAIN
        self._inner: tuple[Any, Any] | None = None
        self._outer: tuple[Any, Any] | None = None
        if secret:
            key = derive_key(secret).ljust(64, b"\0")  # SHA-256's block is 64 bytes
            self._inner = _states(bytes(b ^ 0x36 for b in key))
            self._outer = _states(bytes(b ^ 0x5C for b in key))

    @property
    def keyed(self) -> bool:
        return self._inner is not None

    def text(self, text: str) -> str:
        data = str.encode(text, "utf-8", "surrogatepass")
        short = len(data) <= SHORT_INPUT
        if self._inner is None:
            plain = self._plain[short].copy()
            plain.update(data)
            digest: str = plain.hexdigest()
            return digest
        inner = self._inner[short].copy()
        inner.update(data)
        assert self._outer is not None
        outer = self._outer[1].copy()  # 32 bytes: always short
        outer.update(inner.digest())
        digest = outer.hexdigest()
        return digest

    def value(self, value: Any) -> str | None:
        """Digest of any content value; None stays None (nothing to hash)."""
        if value is None:
            return None
        return self.text(canonical_json(value))

    def error(self, error: BaseException | str | None) -> str | None:
        """Digest of an error: its class and message, never sent raw."""
        if error is None:
            return None
        try:
            if isinstance(error, BaseException):
                return self.text(f"{type(error).__name__}: {error}")
            if isinstance(error, str):
                return self.text(str.__str__(error))
            return self.text(str(error))
        except Exception as exc:  # a __str__ that raises
            return self.text(placeholder(error, exc))
