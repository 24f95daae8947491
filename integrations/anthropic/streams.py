"""``messages.stream()``: the Anthropic helper that does not go through
``messages.create``.

In anthropic 2.x ``Messages.stream()`` builds the request as a
``functools.partial`` of ``self._post`` (``AsyncMessages.stream()``: an
un-awaited ``self._post(...)`` coroutine) and hands it to a
``MessageStreamManager``, which sends it on ``__enter__`` / ``__aenter__``.
The manager keeps it in its private ``__api_request``; that is the one
place to time the request and reach the raw stream, so it is replaced on
this manager instance only. An SDK that moved it gets the manager back
untouched (and one warning).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from dunetrace.log import capture_internal_errors, warn_once
from dunetrace.model_calls import in_framework_model_call
from dunetrace.run import Run, get_current_run

from .._client_wrapping import MethodFactory, Wrapping, begin_call
from .._llm_calls import Endpoint

__all__ = ["stream_method"]

_STREAMING = {"stream": True}


def _request_key(manager: Any) -> str | None:
    for key in vars(manager):
        if key.endswith("__api_request"):
            return str(key)
    return None


def _hook(manager: Any, run: Run, endpoint: Endpoint, kwargs: dict[str, Any]) -> None:
    key = _request_key(manager)
    if key is None:
        warn_once(
            "anthropic-stream-manager",
            "dunetrace: this anthropic SDK's %s keeps its request elsewhere; messages.stream() calls are not reported",
            type(manager).__name__,
        )
        return
    original = vars(manager)[key]
    if inspect.isawaitable(original):

        async def async_request() -> Any:
            call = begin_call(run, endpoint, kwargs)
            if call is None:
                return await original
            try:
                raw = await original
            except BaseException as exc:
                call.failed(exc)
                raise
            return call.returned(raw, _STREAMING, True)

        vars(manager)[key] = async_request()
        return

    if not callable(original):
        return

    def request() -> Any:
        call = begin_call(run, endpoint, kwargs)
        if call is None:
            return original()
        try:
            raw = original()
        except BaseException as exc:
            call.failed(exc)
            raise
        return call.returned(raw, _STREAMING, False)

    vars(manager)[key] = request


def stream_method(endpoint: Endpoint) -> MethodFactory:
    def make(original: Callable[..., Any], wrapping: Wrapping) -> Callable[..., Any]:
        @functools.wraps(original)
        def stream(*args: Any, **kwargs: Any) -> Any:
            manager = original(*args, **kwargs)
            run = get_current_run()
            if run is None or not wrapping.active or in_framework_model_call():
                return manager
            with capture_internal_errors(f"{endpoint.name}.stream"):
                _hook(manager, run, endpoint, kwargs)
            return manager

        return stream

    return make
