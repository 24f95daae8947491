"""The failure log behind real exception classes, without CrewAI: bounded,
names and numbers only, and an HTTP status found through the exceptions an
error was raised from."""

from __future__ import annotations

import httpx
from hypothesis import given, settings
from hypothesis import strategies as st

from dunetrace.integrations.crewai.errors import FailureLog, http_status


class StatusError(Exception):
    def __init__(self, status: object) -> None:
        super().__init__("secret")
        self.status_code = status


def test_the_log_keeps_names_and_numbers_within_its_bound() -> None:
    log = FailureLog(limit=3)
    for i in range(5):
        log.note(f"e{i}", StatusError(500 + i))
    assert len(log) == 3
    assert log.pop("e0") is None and log.pop("e1") is None  # the oldest went
    failure = log.pop("e4")
    assert failure is not None and (failure.error_type, failure.http_status) == ("StatusError", 504)
    assert log.pop("e4") is None  # read once
    log.note(None, ValueError("x"))  # no id: nothing kept
    assert len(log) == 2


def test_http_status_through_the_chain_of_causes() -> None:
    request = httpx.Request("POST", "http://127.0.0.1/")
    response = httpx.Response(503, request=request)
    try:
        try:
            raise httpx.HTTPStatusError("down", request=request, response=response)
        except httpx.HTTPStatusError as inner:
            raise ValueError("wrapped") from inner
    except ValueError as outer:
        assert http_status(outer) == 503
    assert http_status(StatusError(200)) is None  # not an error status
    assert http_status(RuntimeError("plain")) is None


@given(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)))
@settings(max_examples=100, deadline=None)
def test_any_status_value_is_read_safely(value: object) -> None:
    status = http_status(StatusError(value))
    assert status is None or (type(status) is int and status >= 400)
