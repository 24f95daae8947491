"""The one HTTP-status vocabulary every integration sends beside a failed
model call: ``rate_limit`` for 429, ``api_error`` for any other 4xx/5xx."""

from __future__ import annotations

from types import SimpleNamespace as NS
from typing import Any

import httpx
import openai
from hypothesis import given
from hypothesis import strategies as st

from dunetrace.api_errors import api_error_signal, status_signal_name


def _openai_error(status: int) -> openai.APIStatusError:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(status, request=request, json={"error": {"message": "secret text"}})
    return openai.APIStatusError("secret text", response=response, body=None)


def test_real_sdk_errors_give_status_and_class_never_the_message() -> None:
    assert api_error_signal(_openai_error(429)) == ("rate_limit", {"http_status": 429, "error_type": "APIStatusError"})
    name, meta = api_error_signal(_openai_error(503)) or ("", {})
    assert name == "api_error" and meta["http_status"] == 503
    assert "secret" not in repr(meta)


def test_an_httpx_status_error_reads_its_response() -> None:
    request = httpx.Request("GET", "http://127.0.0.1/")
    error = httpx.HTTPStatusError("nope", request=request, response=httpx.Response(404, request=request))
    assert api_error_signal(error) == ("api_error", {"http_status": 404, "error_type": "HTTPStatusError"})


class _Raising(Exception):
    @property
    def status_code(self) -> int:
        raise RuntimeError("broken property")


def test_errors_without_an_http_status_give_nothing() -> None:
    assert api_error_signal(ValueError("x")) is None
    assert api_error_signal(_Raising()) is None
    error = RuntimeError("x")
    error.status_code = True  # type: ignore[attr-defined]  # a bool is not a status
    assert api_error_signal(error) is None
    assert api_error_signal(NS(status_code=500)) is None  # not an exception


@given(st.integers(min_value=-10, max_value=1000))
def test_status_decides_the_name(status: int) -> None:
    error = RuntimeError("x")
    error.status_code = status  # type: ignore[attr-defined]
    found = api_error_signal(error)
    if status < 400:
        assert found is None
    else:
        assert found == (status_signal_name(status), {"http_status": status, "error_type": "RuntimeError"})
        assert found[0] == ("rate_limit" if status == 429 else "api_error")


@given(st.one_of(st.none(), st.integers(), st.text(), st.floats(), st.lists(st.integers())))
def test_any_value_is_answered_never_raised(value: Any) -> None:
    assert api_error_signal(value) is None
