"""One LLM API call made through a wrapped client (OpenAI, Anthropic),
reported into the current run.

The provider modules say how to read their responses (an :class:`Endpoint`);
this module does the rest, the same way for both SDKs: ``llm.called`` before
the request, ``llm.responded`` once when the call is over, streams watched
chunk by chunk without changing what the caller's iterator yields or when
(_llm_streams.py: how each way a stream ends is answered), and API errors
turned into ``external.signal`` events while the exception itself goes on
to the caller untouched.

Imports no SDK: everything here works on the objects the SDK hands back.
"""

from __future__ import annotations

import inspect
import json
import sys
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dunetrace.api_errors import status_signal_name
from dunetrace.hashing import canonical_json
from dunetrace.log import capture_internal_errors

from ._llm_streams import ABANDONED, watch_stream, watch_streaming_response

if TYPE_CHECKING:
    from dunetrace.run import Run

__all__ = [
    "ERROR",
    "Endpoint",
    "LlmCall",
    "Outcome",
    "StreamReader",
    "http_errors",
    "internal_error",
    "tool_arguments",
]

_clock = time.perf_counter

#: The header the Stainless-generated SDKs (openai, anthropic) add for
#: ``.with_raw_response`` ("true") and ``.with_streaming_response`` ("stream").
RAW_RESPONSE_HEADER = "X-Stainless-Raw-Response"

#: ``finish_reason`` of a call that raised (a cancellation too); its
#: ``error_type`` says which exception.
ERROR = "error"


def tool_arguments(value: Any) -> Any:
    """Tool-call arguments as a value: OpenAI sends a JSON string, Anthropic
    an object (or, streamed, JSON text in pieces). Parsed, so the same call
    hashes the same whichever way it arrived."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class Outcome:
    """What a response says about its call: tokens, finish reason, and the
    content (hashed and measured by the run, never sent)."""

    __slots__ = ("completion_tokens", "finish_reason", "prompt_tokens", "text", "tool_calls")

    def __init__(
        self,
        completion_tokens: int | None = None,
        prompt_tokens: int | None = None,
        finish_reason: str | None = None,
        text: str = "",
        tool_calls: list[tuple[Any, Any]] | None = None,
    ) -> None:
        self.completion_tokens = completion_tokens
        self.prompt_tokens = prompt_tokens
        self.finish_reason = finish_reason
        self.text = text
        self.tool_calls = tool_calls or []

    def output(self) -> tuple[Any, int]:
        """The value to hash and its length. Plain text when the model only
        wrote text; with tool calls, the text and each call's name and
        arguments (the arguments count towards the length)."""
        if not self.tool_calls:
            return self.text, len(self.text)
        calls = [{"name": name, "arguments": tool_arguments(args)} for name, args in self.tool_calls]
        length = len(self.text) + sum(len(canonical_json(call["arguments"])) for call in calls)
        return {"text": self.text, "tool_calls": calls}, length


class StreamReader:
    """Reads a stream's chunks as they pass. ``feed`` must be cheap: it runs
    between the SDK yielding a chunk and the caller receiving it."""

    __slots__ = ()

    def feed(self, item: Any) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def outcome(self) -> Outcome:  # pragma: no cover - interface
        raise NotImplementedError


class Endpoint:
    """How to report one SDK method: where the model and prompt are in its
    arguments, how to read a response and a stream, which errors mean what.

    ``errors`` is ``(timeout classes, rate-limit classes, other API error
    classes)``, taken from the SDK and its HTTP library when the client is
    wrapped.
    """

    __slots__ = ("errors", "model", "name", "prompt", "read", "source", "stream_reader")

    def __init__(
        self,
        name: str,
        source: str,
        model: Callable[[dict[str, Any]], Any],
        prompt: Callable[[dict[str, Any]], Any],
        read: Callable[[Any], Outcome],
        stream_reader: Callable[[], StreamReader],
        errors: tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]],
    ) -> None:
        self.name = name
        self.source = source
        self.model = model
        self.prompt = prompt
        self.read = read
        self.stream_reader = stream_reader
        self.errors = errors

    def signal(self, exc: BaseException) -> tuple[str, dict[str, Any]] | None:
        """The ``external.signal`` an API error is: ``rate_limit``,
        ``timeout`` or ``api_error``, with the HTTP status when there is
        one. None for errors that are not the API's (a bad argument)."""
        timeouts, rate_limits, status_errors = self.errors
        meta: dict[str, Any] = {"error_type": type(exc).__name__}
        status = getattr(exc, "status_code", None)
        # A stream that fails mid-way carries the 200 it started with.
        if isinstance(status, int) and status >= 400:
            meta["http_status"] = status
        kind = _api_error_kind(getattr(exc, "body", None))
        if kind is not None:
            meta["api_error_type"] = kind
        if isinstance(exc, timeouts):
            return "timeout", meta
        if isinstance(exc, rate_limits) or status == 429 or kind in ("rate_limit_error", "rate_limit_exceeded"):
            return "rate_limit", meta
        if isinstance(exc, status_errors):
            return "api_error", meta
        return None

    def retry_signal(self, response: Any, exc: BaseException | None) -> tuple[str, dict[str, Any]] | None:
        """The signal for an attempt the SDK is about to retry: its failed
        HTTP response, or the exception being handled (a timeout, a refused
        connection)."""
        status = getattr(response, "status_code", None)
        if isinstance(status, int):
            return status_signal_name(status), {"http_status": status}
        if exc is not None:
            timeouts, _, _ = self.errors
            kind = "timeout" if isinstance(exc, timeouts) else "api_error"
            return kind, {"error_type": type(exc).__name__}
        return None


def http_errors(sdk: Any) -> tuple[tuple[type, ...], tuple[type, ...]]:
    """Timeout and transport error classes of the HTTP library ``sdk``
    (the openai or anthropic module) is built on: httpx for openai 2.x,
    httpx2 for anthropic 2.x. A stream that breaks mid-way raises these as
    they are; the SDKs only wrap errors of the initial request."""
    try:
        base = sdk.DefaultHttpxClient.__mro__[1]
        module = sys.modules[base.__module__.split(".")[0]]
        return (module.TimeoutException,), (module.TransportError,)
    except (AttributeError, IndexError, KeyError):
        return (), ()


def _api_error_kind(body: Any) -> str | None:
    """The error's type identifier (``overloaded_error``), never its message."""
    if not isinstance(body, dict):
        return None
    inner = body.get("error")
    kind = (inner.get("type") if isinstance(inner, dict) else None) or body.get("type")
    if kind == "error" and isinstance(inner, dict):
        kind = inner.get("type")
    if isinstance(kind, str) and 0 < len(kind) <= 64 and kind.replace("_", "").isalnum():
        return kind
    return None


def _raw_mode(kwargs: dict[str, Any]) -> str | None:
    headers = kwargs.get("extra_headers")
    if isinstance(headers, dict):
        value = headers.get(RAW_RESPONSE_HEADER)
        return value if isinstance(value, str) else None
    return None


def internal_error(where: str, exc: Exception) -> None:
    """Hand ``exc`` to ``capture_internal_errors``: logged once (re-raised
    in tests). Hot paths (per call, per chunk) catch with try/except and
    only enter the guard's context manager when something went wrong."""
    with capture_internal_errors(where):
        raise exc


class LlmCall:
    """One call in flight: its run, step and start time. Reports
    ``llm.responded`` exactly once, whichever way the call ends."""

    __slots__ = ("_once", "done", "endpoint", "fed", "reader", "reading", "run", "start", "step", "watched")

    def __init__(self, run: Run, endpoint: Endpoint, kwargs: dict[str, Any]) -> None:
        self.run = run
        self.endpoint = endpoint
        self.done = False
        self.reading = False
        #: A stream or a body the caller reads later is being watched.
        self.watched = False
        self.fed = False  # a chunk of the stream was read
        self.reader: StreamReader | None = None
        self._once: threading.Lock | None = None
        model = endpoint.model(kwargs)
        self.step = run.llm_called(model if isinstance(model, str) else None, prompt=endpoint.prompt(kwargs))
        self.start = _clock()
        self.keep_open()

    # -- ends -----------------------------------------------------------------

    def _claim(self) -> bool:
        """True for the one caller that gets to report (a stream can end on
        the consumer's thread and be closed from another)."""
        once = self._once
        if once is None:
            if self.done:
                return False
            self.done = True
            return True
        if not once.acquire(blocking=False):
            return False
        self.done = True
        return True

    def succeeded(self, outcome: Outcome | None, finish_reason: str | None = None) -> None:
        """The call is over. Without an ``outcome`` (nothing was read), its
        latency and ``finish_reason`` only."""
        if not self._claim():
            return
        self._forget_run_end()
        latency = (_clock() - self.start) * 1000
        if outcome is None:
            self.run.llm_responded(latency_ms=latency, finish_reason=finish_reason, step=self.step)
            return
        output, length = outcome.output()
        self.run.llm_responded(
            outcome.completion_tokens,
            latency,
            outcome.finish_reason,
            length,
            prompt_tokens=outcome.prompt_tokens,
            output=output,
            step=self.step,
        )

    def failed(self, exc: BaseException, partial: Outcome | None = None) -> None:
        """The call raised: ``finish_reason="error"`` with the exception's
        class as ``error_type`` (a cancellation too: ``CancelledError``,
        ``KeyboardInterrupt``), and for an API error the ``external.signal``
        with its HTTP status."""
        if not self._claim():
            return
        self._forget_run_end()
        with capture_internal_errors(f"{self.endpoint.name}.error"):
            latency = (_clock() - self.start) * 1000
            self.run.llm_responded(
                partial.completion_tokens if partial is not None else None,
                latency,
                ERROR,
                prompt_tokens=partial.prompt_tokens if partial is not None else None,
                step=self.step,
                error=exc,
            )
            found = self.endpoint.signal(exc)
            if found is not None:
                name, meta = found
                self.run.external_signal(name, source=self.endpoint.source, **meta)

    def returned(self, result: Any, kwargs: dict[str, Any], asynchronous: bool) -> Any:
        """The SDK method returned: read the response, or start watching the
        stream. Returns ``result`` itself, always."""
        try:
            self._returned(result, kwargs, asynchronous, None)
        except Exception as exc:
            self._unread(exc)
        return result

    async def areturned(self, result: Any, kwargs: dict[str, Any]) -> Any:
        """:meth:`returned` of an async method: an async raw response is
        parsed with ``await`` (``AsyncAPIResponse.parse()``)."""
        try:
            parsed = None
            if _raw_mode(kwargs) == "true" and callable(getattr(result, "parse", None)):
                # parse() caches per type: the caller's own parse() gets
                # this same object back, without a second read.
                parsed = result.parse()  # LegacyAPIResponse: sync even on an async client
                if inspect.isawaitable(parsed):
                    parsed = await parsed
            self._returned(result, kwargs, True, parsed)
        except Exception as exc:
            self._unread(exc)
        return result

    def _unread(self, exc: Exception) -> None:
        internal_error(f"{self.endpoint.name}.response", exc)
        if not self.done and not self.watched:  # the call still gets its llm.responded
            self.succeeded(None)

    def _returned(self, result: Any, kwargs: dict[str, Any], asynchronous: bool, parsed: Any) -> None:
        mode = _raw_mode(kwargs)
        if mode == "stream":
            # .with_streaming_response: the body is the caller's to read;
            # reading it here would change what they get. Their parse() is
            # watched instead.
            watch_streaming_response(self, result, kwargs.get("stream") is True, asynchronous)
            return
        target = result
        if parsed is not None:
            target = parsed
        elif mode is not None and callable(getattr(result, "parse", None)):
            # .with_raw_response: parse() caches per type, so the caller's
            # own parse() gets this same object back.
            target = result.parse()
        self.read(target, kwargs.get("stream") is True, asynchronous)

    def read(self, target: Any, streamed: bool, asynchronous: bool) -> None:
        """Report a parsed response, or watch a parsed stream."""
        if streamed:
            watch_stream(self, target, asynchronous)
            return
        outcome = None
        try:
            outcome = self.endpoint.read(target)
        except Exception as exc:  # still report the call, without its outcome
            internal_error(f"{self.endpoint.name}.read", exc)
        self.succeeded(outcome)

    # -- streams --------------------------------------------------------------

    def keep_open(self) -> None:
        """The call may end on any thread, and if it is still open when its
        run ends (a stream, a request in a task the run did not wait for),
        the run's end answers it."""
        if self._once is None:
            self._once = threading.Lock()
            if self.run.finished:
                self.run_ended()  # ended meanwhile (a shutdown on another thread)
            else:
                self.run.before_end(self, self.run_ended)

    def run_ended(self) -> None:
        """The run ends with this call still open: answered now, before the
        run's terminal event, with what was read of it."""
        self.stream_ended(None, ABANDONED)

    def _forget_run_end(self) -> None:
        if self._once is not None:
            self.run.before_end(self, None)

    def stream_ended(self, exc: BaseException | None, cut: str | None) -> None:
        """The stream ended: ``exc`` when it failed; ``cut`` (:data:`PARTIAL`,
        :data:`ABANDONED`) when it stopped before the API's last event, the
        finish reason unless the API sent one already."""
        if self.done:
            return
        reader, self.reader = self.reader, None  # the collected text goes now
        outcome = None
        if reader is not None and self.fed:  # nothing read: no output to hash
            try:
                outcome = reader.outcome()
            except Exception as err:  # still report the call, without its outcome
                internal_error(f"{self.endpoint.name}.stream", err)
        if exc is None and cut is not None and outcome is not None and outcome.finish_reason is None:
            outcome.finish_reason = cut
        with capture_internal_errors(f"{self.endpoint.name}.stream_end"):
            if exc is None:
                self.succeeded(outcome, cut)
            else:
                self.failed(exc, outcome)

    def feed(self, item: Any) -> None:
        self.fed = True
        reader = self.reader
        if reader is not None:
            try:
                reader.feed(item)
            except Exception as exc:
                self.reader = None  # a reader that broke once reads no more
                internal_error(f"{self.endpoint.name}.stream", exc)
