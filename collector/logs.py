"""The collector's log: what ``dunetrace serve`` writes to stderr.

Everything goes through the standard ``logging`` module: the collector's
own loggers (``dunetrace.collector.*``) and uvicorn's. ``--log-format
json`` writes one JSON object a line for log shippers; ``text`` (the
default) is for a person at a terminal. Fields given with
``extra={...}`` (``event``, ``client``, ``path``, ``status``...) are part
of each JSON object, and appended as ``key=value`` to a text line.

This is for the collector's own process (and its judge worker): the SDK
in an agent's process never configures logging.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from typing import Any, TextIO

__all__ = ["FORMATS", "LEVELS", "JsonFormatter", "RefusalLog", "TextFormatter", "configure", "current"]

FORMATS = ("text", "json")
LEVELS = ("debug", "info", "warning", "error", "critical")

#: Attributes every LogRecord has: anything else came from ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
#: uvicorn passes its message again with terminal colours: not for a log.
_STANDARD.add("color_message")

#: (level, format) as last configured, for the judge worker process.
_current: tuple[str, str] | None = None

logger = logging.getLogger("dunetrace.collector")


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message,
    the record's extra fields, and ``exc`` with a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_extras(record))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # default=repr: an extra value that is not JSON still gives a line.
        # ensure_ascii: no raw U+2028, NEL or the like, which some readers take
        # for a line break.
        return json.dumps(entry, default=repr)


def _plain(value: Any) -> str:
    """A field's value on one text line: a request's path or a client's
    header with a line break in it could otherwise forge a log line."""
    text = str(value)
    return text if text.isprintable() and " " not in text else repr(text)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if not message.isprintable():
            # A value from a request in the message: its line breaks and
            # escapes are shown, not acted on (a traceback keeps its lines).
            escaped = message.encode("unicode_escape").decode("ascii")
            record = logging.makeLogRecord({**vars(record), "msg": escaped, "args": None})
        text = super().format(record)
        extras = _extras(record)
        if extras:
            first, newline, rest = text.partition("\n")
            text = first + "  " + " ".join(f"{k}={_plain(v)}" for k, v in extras.items()) + newline + rest
        return text


def configure(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send every log record of this process at ``level`` and up to
    ``stream`` (stderr) in ``fmt``. Replaces what an earlier call set."""
    global _current
    if level.lower() not in LEVELS:
        raise ValueError(f"log level {level!r} is not one of {', '.join(LEVELS)}")
    if fmt not in FORMATS:
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.set_name("dunetrace-collector")
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == "dunetrace-collector"]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # uvicorn's loggers write through the root handler, not their own.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
    # httpx logs each request's URL at INFO: the alert webhooks' URLs are
    # secrets (a Slack webhook URL is its own credential).
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    _current = (level.lower(), fmt)


def current() -> tuple[str, str] | None:
    """(level, format) of this process's last ``configure``, or None."""
    return _current


class RefusalLog:
    """Warnings for refused requests, one collector's. ``kind`` names the
    request's class (``host``, ``cross_site``, ``content_type``, ``auth``,
    ``too_large``, ``header_timeout``, ``body_timeout``, ``connections``,
    ``invalid``). Past ``per_window`` of a class in ``window`` seconds the
    rest are counted, and the next line logged says how many: a client
    retrying a bad request in a loop (or someone probing) must not fill
    the disk."""

    def __init__(self, per_window: int = 20, window: float = 10.0) -> None:
        self.per_window = per_window
        self.window = window
        self._windows: dict[str, list[float]] = {}  # class -> [start, logged, not logged]
        self._lock = threading.Lock()

    def __call__(self, kind: str, detail: str, scope: Any = None, status: int = 0) -> None:
        now = time.monotonic()
        with self._lock:
            window = self._windows.get(kind)
            unlogged = 0
            if window is None or now - window[0] >= self.window:
                unlogged = int(window[2]) if window else 0
                window = self._windows[kind] = [now, 0, 0]
            if window[1] >= self.per_window:
                window[2] += 1
                return
            window[1] += 1
        extra: dict[str, Any] = {"event": "refused", "refused": kind}
        if unlogged:
            extra["not_logged"] = unlogged
            detail += f" ({unlogged} more of these were not logged)"
        if status:
            extra["status"] = status
        if scope is not None:
            client = scope.get("client")
            if client:
                extra["client"] = f"{client[0]}:{client[1]}"
            if scope.get("path"):
                extra["method"] = scope.get("method")
                extra["path"] = scope.get("path")
        logger.warning("refused (%s): %s", kind, detail, extra=extra)
