"""Alerts: each signal at or above a minimum severity, sent to a Slack
incoming webhook and/or a generic webhook, at least once.

``submit()`` never blocks and never raises: it queues one delivery per
destination, and a daemon thread sends them. A delivery that fails with a
connection error, a timeout, a 408/425/429 or a 5xx is retried with
exponential backoff and jitter (honouring ``Retry-After``), up to
``max_attempts`` attempts; another 4xx is not retried (resending the same
request cannot fix it) and is logged once. A receiver may therefore see a
delivery more than once: the ``X-Dunetrace-Delivery`` header is the same on
every attempt, so it can drop repeats.

The generic webhook receives the signal as JSON (``Signal.to_dict()``). With
a secret, the request carries ``X-Dunetrace-Signature: sha256=<hex>``, the
HMAC-SHA256 of the exact body bytes under the secret; a receiver checks it
with :func:`verify_signature`. Slack receives ``{"text": ...}``: the detector,
severity, agent, what happened and what to try.

Webhook URLs are secrets (a Slack URL is its own credential): they are never
logged.
"""

from __future__ import annotations

import heapq
import hmac
import itertools
import json
import logging
import random
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from dunetrace import __version__
from dunetrace import log as dunetrace_log
from dunetrace.http_export import retry_after_seconds
from dunetrace.log import warn_once

from .detectors import SEVERITIES, Signal, severity_rank

__all__ = ["AlertDispatcher", "backoff_delay", "sign", "slack_text", "verify_signature"]

logger = logging.getLogger("dunetrace.collector.alerts")

SIGNATURE_HEADER = "X-Dunetrace-Signature"
DELIVERY_HEADER = "X-Dunetrace-Delivery"

#: Statuses worth another attempt: the receiver is busy or unwell.
_RETRY_STATUSES = frozenset({408, 425, 429})


def sign(body: bytes, secret: str) -> str:
    """The ``X-Dunetrace-Signature`` value for ``body``: ``sha256=<hex>``."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, "sha256").hexdigest()


def verify_signature(body: bytes, secret: str, header: str | None) -> bool:
    """For a receiver: does ``header`` sign exactly ``body`` under ``secret``?"""
    return header is not None and hmac.compare_digest(sign(body, secret), header)


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


@dataclass(order=True)
class _Delivery:
    due: float
    seq: int
    destination: str = field(compare=False)  # "slack" or "webhook"
    url: str = field(compare=False)
    body: bytes = field(compare=False)
    headers: dict[str, str] = field(compare=False)
    label: str = field(compare=False)  # detector and run, for messages
    attempts: int = field(default=0, compare=False)


class AlertDispatcher:
    """Sends signals to Slack and/or a webhook from a background thread."""

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
        self._slack = slack_webhook_url
        self._webhook = webhook_url
        self._secret = webhook_secret
        self._max_attempts = max_attempts
        self._base = backoff_base
        self._cap = backoff_max
        self._timeout = timeout
        self._max_pending = max_pending
        self._heap: list[_Delivery] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._deadline = 0.0
        self._in_flight = 0
        self._counts = {"submitted": 0, "delivered": 0, "retried": 0, "failed": 0, "dropped": 0, "skipped": 0}

    @property
    def enabled(self) -> bool:
        """Whether any destination is configured."""
        return bool(self._slack or self._webhook)

    # -- the caller's side ----------------------------------------------------

    def start(self) -> None:
        """Start the sending thread (``submit`` also starts it)."""
        with self._cond:
            if self._closing or not self.enabled:
                return
            if self._thread is not None and self._thread.is_alive():
                return
            self._thread = threading.Thread(target=self._run, name="dunetrace-alerts", daemon=True)
            self._thread.start()

    def submit(self, signal: Signal | Mapping[str, Any]) -> None:
        """Queue ``signal`` for every destination; returns at once. Signals
        below the minimum severity are skipped."""
        try:
            if not isinstance(signal, Signal):
                signal = Signal.from_dict(signal)
            if not self.enabled:
                return
            try:
                rank = severity_rank(signal.severity)
            except ValueError:
                rank = len(SEVERITIES)  # an unknown severity is not silenced
            if rank < self._min_rank:
                with self._cond:
                    self._counts["skipped"] += 1
                return
            deliveries = self._deliveries(signal)
        except Exception as exc:  # a bad signal must not break the caller's judging loop
            if dunetrace_log.strict:
                raise
            warn_once(f"alerts:bad-signal:{type(exc).__name__}", "dunetrace collector: alert not sent: %r", exc)
            return
        with self._cond:
            if self._closing:
                self._counts["dropped"] += len(deliveries)
                warn_once("alerts:after-stop", "dunetrace collector: alert submitted after stop(); dropped")
                return
            for delivery in deliveries:
                if len(self._heap) >= self._max_pending:
                    self._counts["dropped"] += 1
                    warn_once("alerts:full", "dunetrace collector: %d alerts pending; dropping new ones",
                              self._max_pending)  # fmt: skip
                    continue
                heapq.heappush(self._heap, delivery)
                self._counts["submitted"] += 1
            self._cond.notify_all()
        self.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is due within ``timeout`` seconds, then stop. Deliveries
        still waiting for a retry at the deadline are dropped and counted."""
        with self._cond:
            if self._closing:
                thread = self._thread
            else:
                self._closing = True
                self._deadline = time.monotonic() + max(0.0, timeout)
                self._cond.notify_all()
                thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(max(0.0, timeout) + 0.5)
        with self._cond:
            if thread is None or not thread.is_alive():
                self._abandon()

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Block until nothing is pending or in flight (for tests and
        ``dunetrace demo``); True if that happened within ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._heap or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def stats(self) -> dict[str, int]:
        """Counts of deliveries (one per signal and destination): submitted,
        delivered, retried (extra attempts), failed (gave up), dropped (queue
        full or stopped), pending; and signals skipped (below the minimum
        severity)."""
        with self._cond:
            return {**self._counts, "pending": len(self._heap) + self._in_flight}

    # -- building requests ----------------------------------------------------

    def _deliveries(self, signal: Signal) -> list[_Delivery]:
        label = f"{signal.detector} on run {signal.run_id}"
        out: list[_Delivery] = []
        now = time.monotonic()
        common = {"Content-Type": "application/json", "User-Agent": f"dunetrace-collector/{__version__}"}
        if self._slack:
            body = json.dumps({"text": slack_text(signal)}, ensure_ascii=False).encode("utf-8")
            headers = {**common, DELIVERY_HEADER: str(uuid.uuid4())}
            out.append(_Delivery(now, next(self._seq), "slack", self._slack, body, headers, label))
        if self._webhook:
            body = json.dumps(signal.to_dict(), ensure_ascii=False, sort_keys=True, separators=(",", ":")).encode()
            headers = {**common, DELIVERY_HEADER: str(uuid.uuid4())}
            if self._secret:
                headers[SIGNATURE_HEADER] = sign(body, self._secret)
            out.append(_Delivery(now, next(self._seq), "webhook", self._webhook, body, headers, label))
        return out

    # -- the sending thread ---------------------------------------------------

    def _next(self) -> _Delivery | None:
        """The next due delivery, waiting for it; None when it is time to stop."""
        with self._cond:
            while True:
                now = time.monotonic()
                if self._closing and (not self._heap or now >= self._deadline):
                    return None
                if self._heap and self._heap[0].due <= now:
                    self._in_flight += 1
                    return heapq.heappop(self._heap)
                wait = self._heap[0].due - now if self._heap else None
                if self._closing:
                    wait = min(wait if wait is not None else self._deadline - now, self._deadline - now)
                self._cond.wait(wait)

    def _run(self) -> None:
        try:
            with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
                while True:
                    delivery = self._next()
                    if delivery is None:
                        break
                    try:
                        self._attempt(client, delivery)
                    finally:
                        with self._cond:
                            self._in_flight -= 1
                            self._cond.notify_all()
        except Exception as exc:  # our bug: log it, never take the collector down
            logger.exception("dunetrace collector: the alert thread stopped: %r", exc)
        finally:
            with self._cond:
                self._abandon()

    def _abandon(self) -> None:
        """Count what is left as dropped (called with the lock held)."""
        if self._heap:
            self._counts["dropped"] += len(self._heap)
            logger.warning("dunetrace collector: %d alert deliveries not sent before stop", len(self._heap))
            self._heap.clear()
            self._cond.notify_all()

    def _attempt(self, client: httpx.Client, delivery: _Delivery) -> None:
        delivery.attempts += 1
        retry_after: float | None = None
        try:
            response = client.post(delivery.url, content=delivery.body, headers=delivery.headers)
        except httpx.TransportError as exc:  # refused, reset, timeout: the receiver may come back
            reason = type(exc).__name__
        else:
            status = response.status_code
            if 200 <= status < 300:
                with self._cond:
                    self._counts["delivered"] += 1
                return
            if status not in _RETRY_STATUSES and status < 500:
                with self._cond:
                    self._counts["failed"] += 1
                warn_once(
                    f"alerts:{delivery.destination}:{status}",
                    "dunetrace collector: the %s answered %d to an alert (%s); not retried: check its URL",
                    delivery.destination,
                    status,
                    delivery.label,
                )
                return
            reason = f"HTTP {status}"
            retry_after = retry_after_seconds(response)
        if delivery.attempts >= self._max_attempts:
            with self._cond:
                self._counts["failed"] += 1
            logger.warning(
                "dunetrace collector: gave up sending an alert (%s) to the %s after %d attempts; last: %s",
                delivery.label,
                delivery.destination,
                delivery.attempts,
                reason,
            )
            return
        delay = backoff_delay(delivery.attempts, self._base, self._cap)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._cap))
        logger.debug("dunetrace collector: alert to the %s failed (%s); retrying in %.2fs",
                     delivery.destination, reason, delay)  # fmt: skip
        with self._cond:
            delivery.due = time.monotonic() + delay
            delivery.seq = next(self._seq)
            heapq.heappush(self._heap, delivery)
            self._counts["retried"] += 1
            self._cond.notify_all()
