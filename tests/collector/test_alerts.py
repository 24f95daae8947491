"""Alerts against a real HTTP receiver on 127.0.0.1: Slack and webhook
bodies, the signature, minimum severity, retries with backoff, giving up."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from dunetrace.collector.alerts import AlertDispatcher, backoff_delay, sign, slack_text, verify_signature
from dunetrace.collector.detectors import Signal

SECRET = "s3cret-for-tests"


class Receiver:
    """Records every request; answers with the scripted statuses in order
    (``"reset"`` drops the connection without answering), then 200."""

    def __init__(self, *script: int | str, retry_after: str | None = None, delay: float = 0.0) -> None:
        self.script: deque[int | str] = deque(script)
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                time.sleep(delay)
                with receiver.lock:
                    receiver.requests.append(
                        {"path": self.path, "headers": dict(self.headers), "body": body, "at": time.monotonic()}
                    )
                    answer = receiver.script.popleft() if receiver.script else 200
                    receiver.lock.notify_all()
                if answer == "reset":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                assert isinstance(answer, int)
                self.send_response(answer)
                if retry_after is not None and answer == 429:
                    self.send_header("Retry-After", retry_after)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.requests) < count and time.monotonic() < deadline:
                self.lock.wait(deadline - time.monotonic())
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    made: list[Receiver] = []
    yield made
    for receiver in made:
        receiver.close()


@pytest.fixture
def dispatchers() -> Iterator[list[AlertDispatcher]]:
    made: list[AlertDispatcher] = []
    yield made
    for dispatcher in made:
        dispatcher.stop(timeout=0.3)


def make_signal(severity: str = "HIGH", **changes: Any) -> Signal:
    fields: dict[str, Any] = {
        "detector": "TOOL_LOOP",
        "severity": severity,
        "run_id": "run-42",
        "agent_id": "support-bot",
        "step_index": 5,
        "evidence": {"tool": "search", "calls": 3, "window": 5},
        "explanation": {
            "what": "The agent called the tool 'search' 3 times within 5 consecutive tool calls.",
            "why": "Loops waste turns.",
            "try": "Cap repeats <in the loop> & check the tool.",
        },
    }
    fields.update(changes)
    return Signal(**fields)


def start(
    receivers: list[Receiver],
    dispatchers: list[AlertDispatcher],
    *script: int | str,
    retry_after: str | None = None,
    **kwargs: Any,
) -> tuple[Receiver, AlertDispatcher]:
    receiver = Receiver(*script, retry_after=retry_after)
    receivers.append(receiver)
    kwargs.setdefault("webhook_url", receiver.url)
    dispatcher = AlertDispatcher(backoff_base=0.02, backoff_max=0.5, timeout=2.0, **kwargs)
    dispatchers.append(dispatcher)
    dispatcher.start()
    return receiver, dispatcher


def test_webhook_gets_the_signal_as_json_signed(receivers: list[Receiver], dispatchers: list[AlertDispatcher]) -> None:
    receiver, dispatcher = start(receivers, dispatchers, webhook_secret=SECRET)
    signal = make_signal()
    dispatcher.submit(signal)
    (request,) = receiver.wait_for(1)
    assert json.loads(request["body"]) == signal.to_dict()
    header = request["headers"]["X-Dunetrace-Signature"]
    t, _, mac = header.partition(",v1=")
    assert t.startswith("t=") and abs(int(t[2:]) - time.time()) < 30 and len(mac) == 64
    assert verify_signature(request["body"], header, SECRET)
    assert not verify_signature(request["body"], header, "another secret")
    assert not verify_signature(request["body"] + b" ", header, SECRET)
    assert request["headers"]["Content-Type"] == "application/json"
    assert dispatcher.wait_idle(5)
    assert dispatcher.stats()["delivered"] == 1


def test_signature_is_hmac_sha256_of_the_body() -> None:
    import hashlib
    import hmac

    body = b'{"detector":"TOOL_LOOP"}'
    expected = hmac.new(SECRET.encode(), b"1700000000." + body, hashlib.sha256).hexdigest()
    assert sign(body, SECRET, 1700000000) == f"t=1700000000,v1={expected}"


def test_a_replayed_or_tampered_signature_is_refused() -> None:
    body = b'{"detector":"TOOL_LOOP"}'
    now = time.time()
    fresh = sign(body, SECRET, int(now) - 10)
    assert verify_signature(body, fresh, SECRET, now=now)
    old = sign(body, SECRET, int(now) - 301)
    assert not verify_signature(body, old, SECRET, now=now)  # a replay older than five minutes
    assert verify_signature(body, old, SECRET, tolerance=400, now=now)
    _t, _, mac = fresh.partition(",")
    assert not verify_signature(body, f"t={int(now)},{mac}", SECRET, now=now)  # the timestamp is signed
    for bad in (None, "", "sha256=abc", "t=x,v1=abc", f"v1={mac}", "t=1"):
        assert not verify_signature(body, bad, SECRET, now=now)


def test_no_signature_without_a_secret(receivers: list[Receiver], dispatchers: list[AlertDispatcher]) -> None:
    receiver, dispatcher = start(receivers, dispatchers)
    dispatcher.submit(make_signal())
    (request,) = receiver.wait_for(1)
    assert "X-Dunetrace-Signature" not in request["headers"]
    assert "X-Dunetrace-Delivery" in request["headers"]


def test_slack_gets_a_text_message(receivers: list[Receiver], dispatchers: list[AlertDispatcher]) -> None:
    slack = Receiver()
    receivers.append(slack)
    receiver, dispatcher = start(receivers, dispatchers, slack_webhook_url=slack.url, webhook_secret=SECRET)
    dispatcher.submit(make_signal("CRITICAL", detector="PROMPT_INJECTION_SIGNAL"))
    (request,) = slack.wait_for(1)
    receiver.wait_for(1)
    data = json.loads(request["body"])
    assert list(data) == ["text"]
    text = data["text"]
    assert "PROMPT_INJECTION_SIGNAL" in text and "CRITICAL" in text and "support-bot" in text
    assert "run-42" in text and "step 5" in text
    assert "3 times within 5" in text
    assert "&lt;in the loop&gt; &amp; check" in text  # Slack markup characters escaped
    assert "X-Dunetrace-Signature" not in request["headers"]  # Slack verifies nothing; the secret stays ours
    assert text == slack_text(make_signal("CRITICAL", detector="PROMPT_INJECTION_SIGNAL"))


def test_below_minimum_severity_is_not_sent(receivers: list[Receiver], dispatchers: list[AlertDispatcher]) -> None:
    receiver, dispatcher = start(receivers, dispatchers, min_severity="HIGH")
    dispatcher.submit(make_signal("MEDIUM", detector="CONTEXT_BLOAT"))
    dispatcher.submit(make_signal("LOW", detector="CONTEXT_BLOAT"))
    dispatcher.submit(make_signal("HIGH", detector="RETRY_STORM"))
    dispatcher.submit(make_signal("CRITICAL", detector="PROMPT_INJECTION_SIGNAL"))
    requests = receiver.wait_for(2)
    assert dispatcher.wait_idle(5)
    time.sleep(0.1)
    assert sorted(json.loads(r["body"])["detector"] for r in receiver.requests) == [
        "PROMPT_INJECTION_SIGNAL",
        "RETRY_STORM",
    ]
    assert len(requests) == 2
    assert dispatcher.stats()["skipped"] == 2


def test_minimum_severity_medium_lets_medium_through(
    receivers: list[Receiver], dispatchers: list[AlertDispatcher]
) -> None:
    receiver, dispatcher = start(receivers, dispatchers, min_severity="medium")
    dispatcher.submit(make_signal("LOW"))
    dispatcher.submit(make_signal("MEDIUM"))
    assert dispatcher.wait_idle(5)
    assert [json.loads(r["body"])["severity"] for r in receiver.requests] == ["MEDIUM"]


def test_receiver_failing_twice_then_succeeding(receivers: list[Receiver], dispatchers: list[AlertDispatcher]) -> None:
    receiver, dispatcher = start(receivers, dispatchers, 500, 503, webhook_secret=SECRET)
    dispatcher.submit(make_signal())
    requests = receiver.wait_for(3)
    assert len(requests) == 3
    assert dispatcher.wait_idle(5)
    # The same delivery each time: same body and delivery id, signed afresh at each attempt.
    assert len({r["body"] for r in requests}) == 1
    assert len({r["headers"]["X-Dunetrace-Delivery"] for r in requests}) == 1
    assert all(verify_signature(r["body"], r["headers"]["X-Dunetrace-Signature"], SECRET) for r in requests)
    # Backed off: waits of about 0.01-0.02 s, then 0.02-0.04 s.
    first_wait = requests[1]["at"] - requests[0]["at"]
    second_wait = requests[2]["at"] - requests[1]["at"]
    assert first_wait >= 0.009 and second_wait >= 0.019
    stats = dispatcher.stats()
    assert (stats["delivered"], stats["retried"], stats["failed"], stats["pending"]) == (1, 2, 0, 0)


def test_connection_reset_is_retried(receivers: list[Receiver], dispatchers: list[AlertDispatcher]) -> None:
    receiver, dispatcher = start(receivers, dispatchers, "reset", 502)
    dispatcher.submit(make_signal())
    assert len(receiver.wait_for(3)) == 3
    assert dispatcher.wait_idle(5)
    assert dispatcher.stats()["delivered"] == 1


def test_429_honours_retry_after(receivers: list[Receiver], dispatchers: list[AlertDispatcher]) -> None:
    receiver, dispatcher = start(receivers, dispatchers, 429, retry_after="0.3")
    dispatcher.submit(make_signal())
    requests = receiver.wait_for(2)
    assert len(requests) == 2
    assert requests[1]["at"] - requests[0]["at"] >= 0.29


def test_client_error_is_not_retried(receivers: list[Receiver], dispatchers: list[AlertDispatcher]) -> None:
    receiver, dispatcher = start(receivers, dispatchers, 404)
    dispatcher.submit(make_signal())
    receiver.wait_for(1)
    assert dispatcher.wait_idle(5)
    time.sleep(0.1)
    assert len(receiver.requests) == 1
    assert dispatcher.stats()["failed"] == 1


def test_gives_up_after_max_attempts(receivers: list[Receiver], dispatchers: list[AlertDispatcher]) -> None:
    receiver, dispatcher = start(receivers, dispatchers, 500, 500, 500, 500, max_attempts=3)
    dispatcher.submit(make_signal())
    assert dispatcher.wait_idle(5)
    assert len(receiver.requests) == 3
    assert dispatcher.stats()["failed"] == 1 and dispatcher.stats()["delivered"] == 0


def test_connection_refused_is_retried_then_given_up(dispatchers: list[AlertDispatcher]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dispatcher = AlertDispatcher(webhook_url=f"http://127.0.0.1:{port}/hook", max_attempts=3, backoff_base=0.01)
    dispatchers.append(dispatcher)
    dispatcher.submit(make_signal())  # starts the thread itself
    assert dispatcher.wait_idle(5)
    stats = dispatcher.stats()
    assert (stats["retried"], stats["failed"]) == (2, 1)


def test_submit_never_blocks_on_a_slow_receiver(receivers: list[Receiver], dispatchers: list[AlertDispatcher]) -> None:
    slow = Receiver(delay=0.5)
    receivers.append(slow)
    dispatcher = AlertDispatcher(webhook_url=slow.url, timeout=2.0)
    dispatchers.append(dispatcher)
    started = time.perf_counter()
    for _ in range(20):
        dispatcher.submit(make_signal())
    assert time.perf_counter() - started < 1.0  # sending them in turn takes 10 s
    assert dispatcher.stats()["submitted"] == 20
    assert len(slow.wait_for(1)) == 1


def test_stop_returns_within_its_timeout_and_counts_what_was_left(
    receivers: list[Receiver], dispatchers: list[AlertDispatcher]
) -> None:
    receiver, dispatcher = start(receivers, dispatchers, *([503] * 100), max_attempts=100)
    dispatcher.submit(make_signal())
    receiver.wait_for(1)
    started = time.monotonic()
    dispatcher.stop(timeout=0.3)
    assert time.monotonic() - started < 1.5
    assert dispatcher.stats()["dropped"] == 1
    dispatcher.submit(make_signal())  # after stop: dropped, no exception
    assert dispatcher.stats()["dropped"] == 2


def test_stop_sends_what_is_queued(receivers: list[Receiver], dispatchers: list[AlertDispatcher]) -> None:
    receiver, dispatcher = start(receivers, dispatchers)
    for i in range(5):
        dispatcher.submit(make_signal(run_id=f"run-{i}"))
    dispatcher.stop(timeout=5)
    assert sorted(json.loads(r["body"])["run_id"] for r in receiver.requests) == [f"run-{i}" for i in range(5)]


def test_submit_accepts_a_stored_signal_dict(receivers: list[Receiver], dispatchers: list[AlertDispatcher]) -> None:
    receiver, dispatcher = start(receivers, dispatchers)
    dispatcher.submit(make_signal().to_dict())
    (request,) = receiver.wait_for(1)
    assert json.loads(request["body"])["detector"] == "TOOL_LOOP"


def test_without_destinations_nothing_happens() -> None:
    dispatcher = AlertDispatcher()
    dispatcher.start()
    dispatcher.submit(make_signal())
    dispatcher.stop(0.1)
    assert dispatcher.stats()["submitted"] == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"webhook_url": "ftp://example.invalid"},
        {"slack_webhook_url": "hooks.slack.com/x"},
        {"min_severity": "URGENT"},
        {"max_attempts": 0},
        {"webhook_url": "http://127.0.0.1:1/x", "webhook_secret": ""},
    ],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        AlertDispatcher(**kwargs)


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    assert backoff_delay(1, 1.0, 60.0, rand=lambda: 0.0) == 0.5
    assert backoff_delay(1, 1.0, 60.0, rand=lambda: 0.999999) == pytest.approx(1.0, abs=1e-5)
    assert backoff_delay(4, 1.0, 60.0, rand=lambda: 0.0) == 4.0
    assert backoff_delay(20, 1.0, 60.0, rand=lambda: 0.999999) <= 60.0
    for attempt in range(1, 10):
        # The shortest next wait is never shorter than the longest previous one.
        shortest_next = backoff_delay(attempt + 1, 0.5, 1e9, rand=lambda: 0.0)
        assert shortest_next >= backoff_delay(attempt, 0.5, 1e9, rand=lambda: 1.0)
    waits = {round(backoff_delay(3, 1.0, 60.0), 6) for _ in range(20)}
    assert len(waits) > 1 and all(2.0 <= w <= 4.0 for w in waits)


def test_destinations_are_retried_independently(receivers: list[Receiver], dispatchers: list[AlertDispatcher]) -> None:
    slack = Receiver()
    receivers.append(slack)
    webhook, dispatcher = start(receivers, dispatchers, 500, 500, slack_webhook_url=slack.url)
    dispatcher.submit(make_signal())
    assert len(webhook.wait_for(3)) == 3
    assert dispatcher.wait_idle(5)
    assert len(slack.requests) == 1  # delivered once, not resent with the webhook's retries
    stats = dispatcher.stats()
    assert (stats["submitted"], stats["delivered"], stats["retried"]) == (2, 2, 2)
