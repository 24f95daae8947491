"""What a collector is told at start: flags of ``dunetrace serve``, or the
environment, or the defaults below."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Settings", "read_keys_file"]

DEFAULT_DB = "dunetrace.db"
MAX_EVENTS_PER_BATCH = 500


def _names(text: str) -> frozenset[str]:
    return frozenset(name.strip().lower() for name in text.split(",") if name.strip())


def read_keys_file(path: str) -> list[str]:
    """API keys from a file: one a line; blank lines and lines starting
    with ``#`` are skipped."""
    try:
        with open(path, encoding="utf-8") as file:
            lines = file.read().splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read the API keys file {path!r}: {exc.strerror or exc}") from None
    keys = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    if not keys:
        raise ValueError(f"the API keys file {path!r} holds no key (one a line)")
    return keys


def _float(env: dict[str, str] | os._Environ[str], name: str, default: float) -> float:
    value = env.get(name)
    if not value:
        return default
    try:
        return float(value)
    except ValueError:
        raise ValueError(f"{name}={value!r} is not a number") from None


@dataclass
class Settings:
    #: SQLite file (``DUNETRACE_DB``); ":memory:" is not allowed, the 202
    #: promises the batch is on disk.
    db_path: str = DEFAULT_DB
    #: ``full``: every batch is synced to disk before its 202, so a 202
    #: survives a power cut. ``normal``: it survives a crash of the collector
    #: (SQLite's WAL holds it) but not of the machine; about twice the
    #: batches per second (``DUNETRACE_DB_SYNC``).
    sync: str = "full"
    #: Keys accepted by every route (``--api-key``, ``--api-keys-file``,
    #: ``DUNETRACE_API_KEYS`` comma separated, ``DUNETRACE_API_KEYS_FILE``).
    #: Empty: dev mode, no key needed, and loopback only (server.py).
    api_keys: frozenset[str] = field(default_factory=frozenset)
    #: Request bodies above this many bytes get a 413.
    max_body_bytes: int = 5 * 1024 * 1024
    #: A run that has been silent this long is judged without its terminal
    #: event (``DUNETRACE_RUN_TIMEOUT``, seconds).
    run_timeout: float = 90.0
    #: How often silent runs are looked for, in seconds.
    sweep_interval: float = 5.0
    #: The judge waits until no ingest request has been in progress for
    #: ``judge_quiet`` seconds, at most ``judge_max_delay`` seconds after a
    #: run ended (see judge.py; ``DUNETRACE_JUDGE_MAX_DELAY``).
    judge_quiet: float = 0.03
    judge_max_delay: float = 1.0
    #: Run the detectors in a process of their own (``dunetrace serve``
    #: does), so they do not take the interpreter lock from ingest.
    judge_worker: bool = False
    #: ``detectors.yml`` (``DUNETRACE_DETECTORS``); None: built-in thresholds.
    detectors_path: str | None = None
    slack_webhook_url: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None
    alert_min_severity: str = "HIGH"
    #: OTLP/HTTP traces endpoint that receives each judged run's verdict as a
    #: span in the run's trace (``--otlp-endpoint``,
    #: ``DUNETRACE_OTLP_ENDPOINT``; judgement_spans.py); None: not sent.
    otlp_endpoint: str | None = None
    #: Names a browser may use to reach the collector (the ``Host`` header),
    #: besides the loopback names and IP addresses (``--allowed-host``,
    #: ``DUNETRACE_ALLOWED_HOSTS``); "*" allows any. A name not listed is
    #: refused: that is what stops DNS rebinding.
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    #: Seconds a client has to send a request's headers, from when it
    #: connects or sends its first byte of a request.
    header_timeout: float = 10.0
    #: Seconds a client has to send a request's body once its headers came.
    body_timeout: float = 60.0
    #: Connections open at once, at most; None: below the file-descriptor
    #: limit (see server.py).
    max_connections: int | None = None
    #: How long a dashboard sign-in lasts, in seconds.
    session_lifetime: float = 7 * 24 * 3600.0

    @classmethod
    def from_env(cls, **given: Any) -> Settings:
        """Settings from ``DUNETRACE_*`` variables; keyword arguments that
        are not None win."""
        env = os.environ
        values: dict[str, Any] = {
            "db_path": env.get("DUNETRACE_DB") or DEFAULT_DB,
            "api_keys": frozenset(k.strip() for k in env.get("DUNETRACE_API_KEYS", "").split(",") if k.strip()),
            "sync": (env.get("DUNETRACE_DB_SYNC") or "full").lower(),
            "run_timeout": _float(env, "DUNETRACE_RUN_TIMEOUT", 90.0),
            "judge_max_delay": _float(env, "DUNETRACE_JUDGE_MAX_DELAY", 1.0),
            "detectors_path": env.get("DUNETRACE_DETECTORS") or None,
            "slack_webhook_url": env.get("DUNETRACE_SLACK_WEBHOOK_URL") or None,
            "webhook_url": env.get("DUNETRACE_WEBHOOK_URL") or None,
            "webhook_secret": env.get("DUNETRACE_WEBHOOK_SECRET") or None,
            "alert_min_severity": (env.get("DUNETRACE_ALERT_MIN_SEVERITY") or "HIGH").upper(),
            "otlp_endpoint": env.get("DUNETRACE_OTLP_ENDPOINT") or None,
            "allowed_hosts": _names(env.get("DUNETRACE_ALLOWED_HOSTS", "")),
        }
        keys_file = given.pop("api_keys_file", None) or env.get("DUNETRACE_API_KEYS_FILE")
        if keys_file:
            given["api_keys"] = [*(given.get("api_keys") or ()), *read_keys_file(keys_file)]
        values.update({k: v for k, v in given.items() if v is not None})
        for name in ("api_keys", "allowed_hosts"):
            if isinstance(values[name], (list, tuple, set)):
                values[name] = frozenset(values[name])
        settings = cls(**values)
        settings.check()
        return settings

    def check(self) -> None:
        if not self.db_path or self.db_path == ":memory:" or self.db_path.startswith("file::memory:"):
            raise ValueError("the collector needs a database file (--db PATH or DUNETRACE_DB)")
        if self.sync not in ("full", "normal"):
            raise ValueError(f"sync must be 'full' or 'normal', not {self.sync!r}")
        if self.judge_max_delay < 0 or self.judge_quiet < 0:
            raise ValueError("judge_max_delay and judge_quiet must be numbers of seconds, 0 or more")
        if self.run_timeout <= 0 or self.sweep_interval <= 0:
            raise ValueError("run_timeout and sweep_interval must be positive numbers of seconds")
        if self.max_body_bytes < 1024:
            raise ValueError("max_body_bytes must be at least 1024")
        if self.header_timeout <= 0 or self.body_timeout <= 0:
            raise ValueError("header_timeout and body_timeout must be positive numbers of seconds")
        if self.max_connections is not None and self.max_connections < 8:
            raise ValueError("max_connections must be at least 8")
        for key in self.api_keys:
            if not key or key != key.strip() or not key.isprintable():
                raise ValueError("an API key must be printable text without surrounding spaces")
        if self.otlp_endpoint is not None and not self.otlp_endpoint.startswith(("http://", "https://")):
            raise ValueError(
                f"the OTLP endpoint must be an http(s) URL such as http://127.0.0.1:4318/v1/traces; "
                f"got {self.otlp_endpoint!r}"
            )
        if self.alert_min_severity not in ("LOW", "MEDIUM", "HIGH", "CRITICAL"):
            raise ValueError(
                f"alert minimum severity {self.alert_min_severity!r} is not one of LOW, MEDIUM, HIGH, CRITICAL"
            )

    @property
    def dev_mode(self) -> bool:
        return not self.api_keys
