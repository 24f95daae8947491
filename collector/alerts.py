"""Alerts: each signal at or above a minimum severity, sent to a Slack
incoming webhook and/or a generic webhook, at least once.

Pending deliveries live in an outbox: the collector's database
(``alert_outbox``, written in the same transaction as the run's judgement),
so they survive a restart and, on PostgreSQL, are sent once by whichever
collector process claims them first (``SKIP LOCKED``). A dispatcher made
without a store keeps them in memory (``MemoryOutbox``).

Each destination has its own worker thread: a failing webhook never delays
Slack. A delivery that fails with a connection error, a timeout, a
408/425/429 or a 5xx is retried with exponential backoff and jitter
(honouring ``Retry-After``), up to ``max_attempts`` attempts; another 4xx is
not retried (resending the same request cannot fix it) and is logged once.
A receiver may see a delivery more than once: the ``X-Dunetrace-Delivery``
header is the same on every attempt, so it can drop repeats.

The generic webhook receives the signal as JSON (``Signal.to_dict()``). With
a secret, the request carries ``X-Dunetrace-Signature: t=<unix>,v1=<hex>``,
the HMAC-SHA256 of ``"<t>.<body>"`` under the secret, made at each attempt;
a receiver checks it with :func:`verify_signature`, which also refuses a
timestamp more than five minutes old (a replay). Slack receives
``{"text": ...}``: the detector, severity, agent, what happened and what to
try.

Webhook URLs are secrets (a Slack URL is its own credential): they are never
logged.
"""

from __future__ import annotations

import hmac
import itertools
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import httpx

from dunetrace import log as dunetrace_log
from dunetrace._version import __version__
from dunetrace.http_export import retry_after_seconds
from dunetrace.log import warn_once

from .detectors import SEVERITIES, Signal, severity_rank

__all__ = ["AlertDispatcher", "MemoryOutbox", "backoff_delay", "sign", "slack_text", "verify_signature"]

logger = logging.getLogger("dunetrace.collector.alerts")

SIGNATURE_HEADER = "X-Dunetrace-Signature"
DELIVERY_HEADER = "X-Dunetrace-Delivery"

#: Statuses worth another attempt: the receiver is busy or unwell.
_RETRY_STATUSES = frozenset({408, 425, 429})

#: An outbox row handed to ``outbox_add``: destination, delivery id, body, label.
OutboxRow = tuple[str, str, bytes, str]


def sign(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``X-Dunetrace-Signature`` value for ``body`` sent at ``timestamp``
    (now by default): ``t=<unix>,v1=<hex HMAC-SHA256 of "<t>.<body>">``."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    mac = hmac.new(secret.encode("utf-8"), f"{t}.".encode() + body, "sha256").hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(
    body: bytes, header: str | None, secret: str, tolerance: float = 300, now: float | None = None
) -> bool:
    """For a receiver: does ``header`` sign exactly ``body`` under ``secret``,
    at a time no more than ``tolerance`` seconds from now (older is a replay)?"""
    if not header or not isinstance(header, str):
        return False
    parts: dict[str, list[str]] = {}
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        parts.setdefault(key, []).append(value)
    try:
        t = int(parts["t"][0])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = sign(body, secret, t).partition(",v1=")[2]
    return any(hmac.compare_digest(expected, v) for v in parts.get("v1", ()))


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1, 2, ...):
    ``base * 2**(attempt-1)``, capped at ``cap``, times a random factor in
    [0.5, 1) so that receivers that fail together are not retried together.
    Each wait is at least as long as the longest previous one could be."""
    return min(cap, base * 2 ** (attempt - 1)) * (0.5 + 0.5 * rand())


def _slack_escape(text: str) -> str:
    # Slack reads &, < and > as markup in message text.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_text(signal: Signal) -> str:
    """The Slack message for a signal (Slack mrkdwn)."""
    where = f"run `{_slack_escape(signal.run_id)}`"
    if signal.step_index is not None:
        where += f", step {signal.step_index}"
    lines = [f"*{signal.severity}* {signal.detector} on agent `{_slack_escape(signal.agent_id)}` ({where})"]
    what, hint = signal.explanation.get("what"), signal.explanation.get("try")
    if what:
        lines.append(_slack_escape(what))
    if hint:
        lines.append(f"*Try:* {_slack_escape(hint)}")
    return "\n".join(lines)


class MemoryOutbox:
    """The outbox interface of the stores (store/common.py), in memory: for a
    dispatcher without a database. Lost at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[int, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def outbox_add(self, rows: Iterable[OutboxRow]) -> int:
        now = time.time()
        with self._lock:
            added = 0
            for destination, delivery_id, body, label in rows:
                i = next(self._ids)
                self._rows[i] = {
                    "id": i,
                    "destination": destination,
                    "delivery_id": delivery_id,
                    "body": body,
                    "label": label,
                    "attempts": 0,
                    "due": now,
                    "claimed_until": 0.0,
                }
                added += 1
            return added

    def outbox_claim(self, destination: str, now: float, lease: float, limit: int) -> list[dict[str, Any]]:
        with self._lock:
            due = sorted(
                (
                    r
                    for r in self._rows.values()
                    if r["destination"] == destination and r["due"] <= now and r["claimed_until"] <= now
                ),
                key=lambda r: (r["due"], r["id"]),
            )[:limit]
            for row in due:
                row["claimed_until"] = now + lease
            return [dict(row) for row in due]

    def outbox_done(self, row_id: int) -> None:
        with self._lock:
            self._rows.pop(row_id, None)

    def outbox_retry(self, row_id: int, attempts: int, due: float) -> None:
        with self._lock:
            row = self._rows.get(row_id)
            if row is not None:
                row.update(attempts=attempts, due=due, claimed_until=0.0)

    def outbox_pending(self, destination: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self._rows.values() if destination is None or r["destination"] == destination)

    def outbox_next_due(self, destination: str) -> float | None:
        with self._lock:
            dues = [max(r["due"], r["claimed_until"]) for r in self._rows.values() if r["destination"] == destination]
            return min(dues) if dues else None

    def outbox_clear(self) -> int:
        with self._lock:
            n = len(self._rows)
            self._rows.clear()
            return n


class AlertDispatcher:
    """Sends signals to Slack and/or a webhook, one worker thread each."""

    #: How often an idle worker looks at the outbox anyway: another collector
    #: process sharing the database may have added deliveries.
    poll_interval = 1.0

    def __init__(
        self,
        *,
        slack_webhook_url: str | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        min_severity: str = "HIGH",
        max_attempts: int = 8,
        backoff_base: float = 0.5,
        backoff_max: float = 60.0,
        timeout: float = 5.0,
        max_pending: int = 10_000,
        outbox: Any = None,
    ) -> None:
        for name, url in (("slack_webhook_url", slack_webhook_url), ("webhook_url", webhook_url)):
            if url is not None and not (isinstance(url, str) and url.startswith(("http://", "https://"))):
                raise ValueError(f"AlertDispatcher({name}=...) must be an http(s) URL")
        if webhook_secret is not None and (not isinstance(webhook_secret, str) or not webhook_secret):
            raise ValueError("AlertDispatcher(webhook_secret=...) must be a non-empty string or None")
        if not isinstance(max_attempts, int) or max_attempts < 1:
            raise ValueError(f"AlertDispatcher(max_attempts=...) must be at least 1; got {max_attempts!r}")
        self._min_rank = severity_rank(min_severity)
        self.min_severity = min_severity.upper()
        self._urls = {name: url for name, url in (("slack", slack_webhook_url), ("webhook", webhook_url)) if url}
        self._secret = webhook_secret
        self._max_attempts = max_attempts
        self._base = backoff_base
        self._cap = backoff_max
        self._timeout = timeout
        self._max_pending = max_pending
        #: Where pending deliveries live: a store (durable) or memory.
        self.outbox = outbox if outbox is not None else MemoryOutbox()
        self._durable = outbox is not None
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._deadline = 0.0
        self._in_flight = 0
        self._counts = {"submitted": 0, "delivered": 0, "retried": 0, "failed": 0, "dropped": 0, "skipped": 0}

    @property
    def enabled(self) -> bool:
        """Whether any destination is configured."""
        return bool(self._urls)

    # -- the caller's side ----------------------------------------------------

    def start(self) -> None:
        """Start a worker per destination (``submit`` also starts them);
        deliveries left in a durable outbox by a previous run are sent."""
        with self._cond:
            if self._closing or not self.enabled or any(t.is_alive() for t in self._threads):
                return
            self._threads = [
                threading.Thread(target=self._run, args=(name,), name=f"dunetrace-alerts-{name}", daemon=True)
                for name in self._urls
            ]
            for thread in self._threads:
                thread.start()

    def rows_for(self, signals: Iterable[Signal | Mapping[str, Any]]) -> list[OutboxRow]:
        """Outbox rows for ``signals``: one per destination for each signal at
        or above the minimum severity. Never raises (a bad signal is logged)."""
        rows: list[OutboxRow] = []
        if not self.enabled:
            return rows
        for signal in signals:
            try:
                if not isinstance(signal, Signal):
                    signal = Signal.from_dict(signal)
                try:
                    rank = severity_rank(signal.severity)
                except ValueError:
                    rank = len(SEVERITIES)  # an unknown severity is not silenced
                if rank < self._min_rank:
                    with self._cond:
                        self._counts["skipped"] += 1
                    continue
                rows.extend(self._rows(signal))
            except Exception as exc:  # a bad signal must not break the caller's judging loop
                if dunetrace_log.strict:
                    raise
                warn_once(f"alerts:bad-signal:{type(exc).__name__}", "dunetrace collector: alert not sent: %r", exc)
        return rows

    def added(self, count: int) -> None:
        """``count`` rows were put in the outbox by the caller (the judge, in
        its judgement's transaction): wake the workers."""
        with self._cond:
            self._counts["submitted"] += count
            self._cond.notify_all()
        if count:
            self.start()

    def submit(self, signal: Signal | Mapping[str, Any]) -> None:
        """Queue ``signal`` for every destination; returns at once. Signals
        below the minimum severity are skipped."""
        rows = self.rows_for([signal])
        if not rows:
            return
        with self._cond:
            closing = self._closing
        if closing:
            with self._cond:
                self._counts["dropped"] += len(rows)
            warn_once("alerts:after-stop", "dunetrace collector: alert submitted after stop(); dropped")
            return
        try:
            if self.outbox.outbox_pending() + len(rows) > self._max_pending:
                with self._cond:
                    self._counts["dropped"] += len(rows)
                warn_once("alerts:full", "dunetrace collector: %d alerts pending; dropping new ones", self._max_pending)
                return
            self.added(self.outbox.outbox_add(rows))
        except Exception as exc:  # the database refused: the caller's loop goes on
            if dunetrace_log.strict:
                raise
            warn_once(f"alerts:outbox:{type(exc).__name__}", "dunetrace collector: alert not queued: %r", exc)

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is due within ``timeout`` seconds, then stop. In a
        durable outbox what is left stays for the next start; in memory it is
        dropped and counted."""
        with self._cond:
            if not self._closing:
                self._closing = True
                self._deadline = time.monotonic() + max(0.0, timeout)
                self._cond.notify_all()
            threads = list(self._threads)
        for thread in threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, self._deadline - time.monotonic()) + 0.5)
        if any(t.is_alive() for t in threads):
            return
        try:
            left = self.outbox.outbox_pending()
        except Exception:
            return
        if left and not self._durable:
            self.outbox.outbox_clear()
            with self._cond:
                self._counts["dropped"] += left
            logger.warning("dunetrace collector: %d alert deliveries not sent before stop", left)
        elif left:
            logger.warning("dunetrace collector: %d alert deliveries pending; they are sent at the next start", left)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until nothing is pending or in flight (for tests and
        ``dunetrace demo``); True if that happened within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            with self._cond:
                busy = self._in_flight
            if not busy and not self.outbox.outbox_pending():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

    def stats(self) -> dict[str, int]:
        """Counts of deliveries (one per signal and destination) by this
        process: submitted, delivered, retried (extra attempts), failed (gave
        up), dropped (queue full or stopped); pending in the outbox; and
        signals skipped (below the minimum severity)."""
        pending = self.outbox.outbox_pending()
        with self._cond:
            return {**self._counts, "pending": pending}

    # -- building requests ----------------------------------------------------

    def _rows(self, signal: Signal) -> list[OutboxRow]:
        label = f"{signal.detector} on run {signal.run_id}"
        out: list[OutboxRow] = []
        if "slack" in self._urls:
            body = json.dumps({"text": slack_text(signal)}, ensure_ascii=False).encode("utf-8")
            out.append(("slack", str(uuid.uuid4()), body, label))
        if "webhook" in self._urls:
            body = json.dumps(signal.to_dict(), ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
            out.append(("webhook", str(uuid.uuid4()), body, label))
        return out

    def _headers(self, destination: str, row: Mapping[str, Any]) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"dunetrace-collector/{__version__}",
            DELIVERY_HEADER: row["delivery_id"],
        }
        if destination == "webhook" and self._secret:  # Slack verifies nothing; the secret stays ours
            headers[SIGNATURE_HEADER] = sign(bytes(row["body"]), self._secret)
        return headers

    # -- the workers ----------------------------------------------------------

    def _claim(self, destination: str) -> list[dict[str, Any]] | None:
        """Due deliveries for ``destination``, waiting for some; None when it
        is time to stop."""
        lease = self._timeout + 30.0  # a process that died mid-delivery frees its claim after this
        while True:
            with self._cond:
                closing, deadline = self._closing, self._deadline
            now = time.monotonic()
            if closing and now >= deadline:
                return None
            try:
                rows = self.outbox.outbox_claim(destination, time.time(), lease, 10)
            except Exception as exc:
                warn_once(f"alerts:claim:{type(exc).__name__}", "dunetrace collector: alert outbox unreadable: %r", exc)
                rows = []
            if rows:
                with self._cond:
                    self._in_flight += len(rows)
                return rows
            try:
                next_due = self.outbox.outbox_next_due(destination)
            except Exception:
                next_due = None
            if closing and next_due is None:
                return None
            wait = self.poll_interval if next_due is None else max(0.0, min(self.poll_interval, next_due - time.time()))
            if closing:
                wait = min(wait, deadline - now)
            with self._cond:
                if self._closing == closing:
                    self._cond.wait(max(0.001, wait))

    def _run(self, destination: str) -> None:
        try:
            with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
                while True:
                    rows = self._claim(destination)
                    if rows is None:
                        break
                    for row in rows:
                        try:
                            self._attempt(client, destination, row)
                        finally:
                            with self._cond:
                                self._in_flight -= 1
                                self._cond.notify_all()
        except Exception as exc:  # our bug: log it, never take the collector down
            logger.exception("dunetrace collector: the %s alert worker stopped: %r", destination, exc)

    def _attempt(self, client: httpx.Client, destination: str, row: Mapping[str, Any]) -> None:
        attempts = int(row["attempts"]) + 1
        retry_after: float | None = None
        try:
            response = client.post(
                self._urls[destination], content=bytes(row["body"]), headers=self._headers(destination, row)
            )
        except httpx.TransportError as exc:  # refused, reset, timeout: the receiver may come back
            reason = type(exc).__name__
        else:
            status = response.status_code
            if 200 <= status < 300:
                self.outbox.outbox_done(row["id"])
                with self._cond:
                    self._counts["delivered"] += 1
                logger.info("dunetrace collector: alert (%s) sent to the %s", row["label"], destination)
                return
            if status not in _RETRY_STATUSES and status < 500:
                self.outbox.outbox_done(row["id"])
                with self._cond:
                    self._counts["failed"] += 1
                warn_once(
                    f"alerts:{destination}:{status}",
                    "dunetrace collector: the %s answered %d to an alert (%s); not retried: check its URL",
                    destination,
                    status,
                    row["label"],
                )
                return
            reason = f"HTTP {status}"
            retry_after = retry_after_seconds(response)
        if attempts >= self._max_attempts:
            self.outbox.outbox_done(row["id"])
            with self._cond:
                self._counts["failed"] += 1
            logger.warning(
                "dunetrace collector: gave up sending an alert (%s) to the %s after %d attempts; last: %s",
                row["label"],
                destination,
                attempts,
                reason,
            )
            return
        delay = backoff_delay(attempts, self._base, self._cap)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._cap))
        logger.debug("dunetrace collector: alert to the %s failed (%s); retrying in %.2fs", destination, reason, delay)
        self.outbox.outbox_retry(row["id"], attempts, time.time() + delay)
        with self._cond:
            self._counts["retried"] += 1
