"""Dunetrace(...) options: a bad one fails at construction naming the fix;
the environment supplies the defaults."""

from __future__ import annotations

import pytest

from dunetrace import Dunetrace


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"endpoint": "localhost:8001"}, "not an http"),
        ({"endpoint": "ftp://x"}, "not an http"),
        ({"max_queue_size": -1}, "max_queue_size must be a positive integer"),
        ({"max_batch_size": 0}, "max_batch_size must be a positive integer"),
        ({"max_batch_size": 501}, "limit of 500"),
        ({"flush_interval": 0}, "flush_interval must be a positive number"),
        ({"request_timeout": "5"}, "request_timeout must be a positive number"),
        ({"export": "kafka"}, "unknown exporter"),
        ({"max_queue": 5}, "unknown option"),
    ],
)
def test_bad_options_fail_at_construction_naming_the_fix(kwargs: dict, message: str) -> None:
    with pytest.raises((ValueError, TypeError), match=message):
        Dunetrace(**kwargs)


def test_environment_supplies_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DUNETRACE_ENDPOINT", "https://dunetrace.example:9000/")
    monkeypatch.setenv("DUNETRACE_API_KEY", "key-1")
    monkeypatch.setenv("DUNETRACE_HASH_KEY", "secret")
    client = Dunetrace()
    assert client.options.ingest_url == "https://dunetrace.example:9000/v1/ingest"
    assert client.options.api_key == "key-1"
    assert client.hasher.keyed
    explicit = Dunetrace("http://127.0.0.1:1", api_key="")
    assert explicit.options.endpoint == "http://127.0.0.1:1" and explicit.options.api_key == ""


def test_default_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DUNETRACE_ENDPOINT", raising=False)
    monkeypatch.delenv("DUNETRACE_API_KEY", raising=False)
    client = Dunetrace()
    assert client.options.endpoint == "http://localhost:8001" and client.options.api_key == ""
