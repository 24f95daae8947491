"""Keyed content hashes: with the project's secret a copy of the wire (or
the database) confirms no guess; the attacker here knows every algorithm
(the SDK is open source) and guesses exhaustively."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import subprocess
import sys
import textwrap

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dunetrace import Dunetrace
from dunetrace.hashing import SHORT_INPUT, Hasher, sha256_hex
from tests.ingest_server import IngestServer

PROMPTS = [f"You are a helpful assistant for ACME support, variant {i}." for i in range(500)]
SECRET_PROMPT = PROMPTS[337]


def keyed(secret: str, text: str) -> str:
    """The derivation the README documents, written out independently."""
    content_key = hmac.new(secret.encode(), b"dunetrace content hash v1", hashlib.sha256).digest()
    return hmac.new(content_key, text.encode(), hashlib.sha256).hexdigest()


def plain(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def version(prompt_hash: str, model: str, tools: list[str]) -> str:
    return hashlib.sha256(json.dumps([prompt_hash, model, sorted(tools)]).encode()).hexdigest()[:12]


def send_run(ingest: IngestServer, **client_options: object) -> tuple[str, str, dict]:
    client = Dunetrace(endpoint=ingest.url, **client_options)  # type: ignore[arg-type]
    with client.run("bank-bot", system_prompt=SECRET_PROMPT, model="gpt-4o", tools=["check_pin"]) as run:
        run.tool_called("check_pin", "4821")
    client.shutdown(5)
    events = ingest.events[-3:]
    started = events[0]
    return events[1]["payload"]["args_hash"], started["agent_version"], started["payload"]


def test_a_pin_and_a_system_prompt_cannot_be_confirmed_without_the_key(ingest: IngestServer) -> None:
    args_hash, agent_version, started = send_run(ingest, api_key="proj-live-5f2c")
    pins = [f"{n:04d}" for n in range(10_000)]
    model, tools = started["model"], started["tools"]  # metadata: on the wire in clear
    # Without the key: the plain algorithm and a wrong key confirm nothing.
    assert args_hash not in {plain(p) for p in pins}
    assert args_hash not in {keyed("proj-live-0000", p) for p in pins}
    assert agent_version not in {version(plain(p), model, tools) for p in PROMPTS}
    assert agent_version not in {version(keyed("proj-live-0000", p), model, tools) for p in PROMPTS}
    # With it, both fall: the key is what protects them.
    assert [p for p in pins if keyed("proj-live-5f2c", p) == args_hash] == ["4821"]
    assert [p for p in PROMPTS if version(keyed("proj-live-5f2c", p), model, tools) == agent_version] == [SECRET_PROMPT]


def test_without_any_key_hashes_are_plain_and_a_warning_says_so(
    ingest: IngestServer, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DUNETRACE_HASH_KEY", raising=False)
    monkeypatch.delenv("DUNETRACE_API_KEY", raising=False)
    with caplog.at_level(logging.WARNING, logger="dunetrace"):
        args_hash, agent_version, started = send_run(ingest)
        Dunetrace(endpoint=ingest.url).shutdown(1)
    assert caplog.text.count("content hashes are plain SHA-256") == 1
    # the threat the key removes: a dictionary of guesses confirms both
    assert args_hash == plain("4821")
    assert agent_version == version(plain(SECRET_PROMPT), started["model"], started["tools"])


def test_the_hash_key_wins_over_the_api_key(ingest: IngestServer) -> None:
    by_hash_key, version_a, _ = send_run(ingest, api_key="rotated-1", hash_key="stable")
    again, version_b, _ = send_run(ingest, api_key="rotated-2", hash_key="stable")
    assert by_hash_key == again == keyed("stable", "4821") and version_a == version_b


def test_two_processes_with_the_same_key_agree(ingest: IngestServer) -> None:
    code = textwrap.dedent(
        f"""
        from dunetrace import Dunetrace
        dt = Dunetrace(endpoint={ingest.url!r})
        with dt.run("bank-bot", system_prompt={SECRET_PROMPT!r}, model="gpt-4o", tools=["check_pin"]) as run:
            run.tool_called("check_pin", {{"pin": "4821", "attempt": 1}})
        """
    )
    for secret in ("project-a", "project-a", "project-b"):
        env = {**os.environ, "DUNETRACE_API_KEY": secret}
        env.pop("DUNETRACE_HASH_KEY", None)
        done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    started = [e for e in ingest.events if e["event_type"] == "run.started"]
    called = [e["payload"]["args_hash"] for e in ingest.events if e["event_type"] == "tool.called"]
    assert len(started) == 3 and len(called) == 3
    assert called[0] == called[1] != called[2]
    assert started[0]["agent_version"] == started[1]["agent_version"] != started[2]["agent_version"]
    assert called[0] == keyed("project-a", '{"attempt":1,"pin":"4821"}')


@settings(max_examples=200, deadline=None)
@given(secret=st.text(min_size=1, max_size=80), text=st.text(max_size=3000))
def test_the_hasher_is_exactly_the_documented_hmac(secret: str, text: str) -> None:
    content_key = hmac.new(
        secret.encode("utf-8", "surrogatepass"), b"dunetrace content hash v1", hashlib.sha256
    ).digest()
    expected = hmac.new(content_key, text.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
    assert Hasher(secret).text(text) == expected


@settings(max_examples=200, deadline=None)
@given(
    secret=st.none() | st.text(min_size=1, max_size=20),
    size=st.integers(SHORT_INPUT - 4, SHORT_INPUT + 4) | st.integers(0, 3 * SHORT_INPUT),
    char=st.sampled_from(["a", "\u00e9", "\u4e2d", "\U0001f600", "\ud800"]),
)
def test_short_and_long_inputs_hash_alike(secret: str | None, size: int, char: str) -> None:
    # Short inputs take CPython's built-in SHA-256, long ones OpenSSL's:
    # both must give the documented digest on either side of the border.
    text = char * (size // len(char.encode("utf-8", "surrogatepass")))
    data = text.encode("utf-8", "surrogatepass")
    if secret is None:
        expected = hashlib.sha256(data).hexdigest()
        assert sha256_hex(data) == expected
    else:
        content_key = hmac.new(
            secret.encode("utf-8", "surrogatepass"), b"dunetrace content hash v1", hashlib.sha256
        ).digest()
        expected = hmac.new(content_key, data, hashlib.sha256).hexdigest()
    hasher = Hasher(secret)
    assert hasher.text(text) == expected
    assert hasher.text(text) == expected  # the kept states are copied, never changed
