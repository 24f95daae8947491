"""``client.embeddings.create`` inside a run: one ``external.signal`` named
``EMBEDDING`` (:meth:`dunetrace.Run.embedding`) with the model, how many
inputs were embedded, the latency and the prompt tokens the API counted.
The texts are neither sent nor hashed. An embedding is not a step of the
agent: no ``llm.called``. A failed request is ``success=False`` plus the
API error's own signal (with its HTTP status), and raises unchanged.

Whole, async, ``with_raw_response`` (parsed for its usage) and
``with_streaming_response`` (timed only: its body is the caller's to read).
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dunetrace.log import capture_internal_errors
from dunetrace.run import get_current_run

from .._llm_calls import RAW_RESPONSE_HEADER, Endpoint

if TYPE_CHECKING:
    from dunetrace import Run

    from .._client_wrapping import MethodFactory, Wrapping

__all__ = ["embedding_method", "input_count"]

_clock = time.perf_counter


def input_count(value: Any) -> int | None:
    """How many inputs one request embeds: a string or one token array is
    one; a list of them is its length. An iterator is not counted (counting
    would use it up)."""
    if isinstance(value, str):
        return 1
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(item, int) and not isinstance(item, bool) for item in value):
            return 1  # one input given as token ids
        return len(value)
    return None


def _usage_tokens(response: Any, kwargs: dict[str, Any]) -> int | None:
    headers = kwargs.get("extra_headers")
    mode = headers.get(RAW_RESPONSE_HEADER) if isinstance(headers, dict) else None
    if mode == "stream":
        return None  # .with_streaming_response: not read here
    if mode is not None and callable(getattr(response, "parse", None)):
        response = response.parse()  # cached: the caller's parse() gets the same object
        if inspect.iscoroutine(response):  # an async view whose parse() awaits: not read here
            response.close()
            return None
    tokens = getattr(getattr(response, "usage", None), "prompt_tokens", None)
    return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None


class _Embedding:
    __slots__ = ("count", "endpoint", "model", "run", "start")

    def __init__(self, run: Run, endpoint: Endpoint, kwargs: dict[str, Any]) -> None:
        self.run = run
        self.endpoint = endpoint
        model = kwargs.get("model")
        self.model = model if isinstance(model, str) else None
        self.count = input_count(kwargs.get("input"))
        self.start = _clock()

    def returned(self, response: Any, kwargs: dict[str, Any]) -> None:
        latency = (_clock() - self.start) * 1000
        with capture_internal_errors(f"{self.endpoint.source}.embeddings"):
            tokens = _usage_tokens(response, kwargs)
            self.run.embedding(self.model, self.count, latency, input_tokens=tokens, source=self.endpoint.source)

    def failed(self, exc: BaseException) -> None:
        latency = (_clock() - self.start) * 1000
        with capture_internal_errors(f"{self.endpoint.source}.embeddings"):
            self.run.embedding(self.model, self.count, latency, source=self.endpoint.source, success=False)
            found = self.endpoint.signal(exc)
            if found is not None:
                name, meta = found
                self.run.external_signal(name, source=self.endpoint.source, **meta)


def embedding_method(endpoint: Endpoint) -> MethodFactory:
    """A wrapper of ``embeddings.create``; ``endpoint`` gives the SDK's
    error classes and the source name."""

    def make(original: Callable[..., Any], wrapping: Wrapping) -> Callable[..., Any]:
        if inspect.iscoroutinefunction(inspect.unwrap(original)):

            @functools.wraps(original)
            async def async_create(*args: Any, **kwargs: Any) -> Any:
                run = get_current_run()
                if run is None or not wrapping.active:
                    return await original(*args, **kwargs)
                call = _Embedding(run, endpoint, kwargs)
                try:
                    response = await original(*args, **kwargs)
                except BaseException as exc:
                    call.failed(exc)
                    raise
                call.returned(response, kwargs)
                return response

            return async_create

        @functools.wraps(original)
        def create(*args: Any, **kwargs: Any) -> Any:
            run = get_current_run()
            if run is None or not wrapping.active:
                return original(*args, **kwargs)
            call = _Embedding(run, endpoint, kwargs)
            try:
                response = original(*args, **kwargs)
            except BaseException as exc:
                call.failed(exc)
                raise
            call.returned(response, kwargs)
            return response

        return create

    return make
