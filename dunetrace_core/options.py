"""Client options: read once, checked at construction, with messages that say
what to fix."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from typing import Any
from urllib.parse import urlsplit

__all__ = ["MAX_BATCH_CONTRACT", "Options"]

#: The ingest contract rejects a request of more than 500 events (422).
MAX_BATCH_CONTRACT = 500

DEFAULT_ENDPOINT = "http://localhost:8001"


@dataclass(frozen=True)
class Options:
    endpoint: str = DEFAULT_ENDPOINT
    api_key: str = ""
    #: Events held in memory, queued or awaiting a retry. Past it, new events
    #: are dropped and counted (``stats()["dropped"]["queue_full"]``).
    #: 100,000 rides out an outage of 50 s at 2,000 events/s (a batch held
    #: through an outage is its encoded body, about 310 bytes an event for
    #: tool calls: ~31 MB at the bound).
    max_queue_size: int = 100_000
    #: Room kept beyond ``max_queue_size`` for ``run.completed`` /
    #: ``run.errored``, so a run that lost events still ends.
    terminal_reserve: int = 1_000
    #: Events per POST while delivery fails or is paced; batches grow from
    #: it up to ``max_batch_size`` while a backlog builds or after a 429.
    #: (Otherwise a POST carries whatever is due, up to ``max_batch_size``.)
    batch_size: int = 100
    #: Events per POST at most, 1..500 (the ingest API's limit).
    max_batch_size: int = 500
    #: Seconds an event waits in the queue at most: it leaves then, with
    #: what came after it (a batch of ``max_batch_size`` leaves at once).
    flush_interval: float = 0.2
    #: Total deadline of one request in seconds, connect to last byte: a
    #: server that drips its answer is cut here, and the batch is retried.
    request_timeout: float = 10.0
    #: First retry delay, doubled each failure up to ``max_backoff`` (with jitter).
    initial_backoff: float = 0.5
    #: Capped low so delivery resumes within about a second of a backend's
    #: return (a 429 paces requests separately).
    max_backoff: float = 1.0
    #: How long the flush at interpreter exit may take, in seconds.
    exit_timeout: float = 2.0
    #: The secret content hashes are keyed with (HMAC-SHA-256, see
    #: hashing.py); default: the API key; neither set: plain SHA-256.
    hash_key: str | None = None
    #: ``"http"`` (the ingest API) or ``"stdout"`` (NDJSON lines), or both,
    #: comma separated; third-party exporters need only be registered.
    export: str = "http"
    #: Turn off without touching code (``DUNETRACE_ENABLED=false``).
    enabled: bool = True

    @classmethod
    def build(cls, endpoint: str | None, api_key: str | None, **given: Any) -> Options:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(given) - known)
        if unknown:
            raise TypeError(
                f"Dunetrace() got unknown option(s) {', '.join(unknown)}; "
                f"valid options: {', '.join(sorted(known - {'endpoint', 'api_key'}))}"
            )
        env = os.environ
        values: dict[str, Any] = dict(given)
        values["endpoint"] = endpoint or env.get("DUNETRACE_ENDPOINT") or DEFAULT_ENDPOINT
        values["api_key"] = api_key if api_key is not None else env.get("DUNETRACE_API_KEY", "")
        if "hash_key" not in values:
            values["hash_key"] = env.get("DUNETRACE_HASH_KEY") or None
        if "export" not in values and env.get("DUNETRACE_EXPORT"):
            values["export"] = env["DUNETRACE_EXPORT"]
        if "enabled" not in values and env.get("DUNETRACE_ENABLED"):
            values["enabled"] = env["DUNETRACE_ENABLED"].strip().lower() not in ("0", "false", "no", "off")
        options = cls(**values)
        options._check()
        return options

    def _check(self) -> None:
        parts = urlsplit(self.endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(
                f"Dunetrace endpoint {self.endpoint!r} is not an http(s) URL; "
                "pass e.g. endpoint='http://localhost:8001' or set DUNETRACE_ENDPOINT"
            )
        if not isinstance(self.api_key, str):
            raise TypeError("Dunetrace api_key must be a string (empty in dev mode)")
        for name in ("max_queue_size", "batch_size", "max_batch_size", "terminal_reserve"):
            value = getattr(self, name)
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or value < (0 if name == "terminal_reserve" else 1)
            ):
                raise ValueError(f"Dunetrace option {name} must be a positive integer, got {value!r}")
        if self.max_batch_size > MAX_BATCH_CONTRACT:
            raise ValueError(
                f"Dunetrace option max_batch_size={self.max_batch_size} is above the ingest "
                f"API's limit of {MAX_BATCH_CONTRACT} events per request"
            )
        for name in ("flush_interval", "request_timeout", "initial_backoff", "max_backoff", "exit_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"Dunetrace option {name} must be a positive number of seconds, got {value!r}")
        if not isinstance(self.export, str) or not self.export.strip():
            raise ValueError("Dunetrace option export must name an exporter: 'http', 'stdout' or 'http,stdout'")
        bad = sorted(set(self.exporters) - {"http", "stdout", "none"})
        if bad:
            raise ValueError(
                f"Dunetrace option export names unknown exporter(s) {', '.join(bad)}; "
                "built in are 'http', 'stdout' and 'none' (plugins export by implementing dunetrace_export)"
            )

    @property
    def exporters(self) -> tuple[str, ...]:
        return tuple(part.strip().lower() for part in self.export.split(",") if part.strip())

    @property
    def ingest_url(self) -> str:
        return self.endpoint.rstrip("/") + "/v1/ingest"

    @property
    def deploy_url(self) -> str:
        return self.endpoint.rstrip("/") + "/v1/deploy"
