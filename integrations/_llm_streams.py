"""Calls that outlive the method that made them: streams, and responses the
caller reads later (``.with_streaming_response``).

Such a call is answered (``llm.responded``) exactly once, by whichever comes
first:

- the stream reaches the API's last event: the finish reason it sent;
- it fails: ``finish_reason="error"`` (cancellations too, see LlmCall.failed);
- its reader stops early (``break``, ``.close()``, leaving ``with`` /
  ``async with``): :data:`PARTIAL`, with the tokens and text read so far;
- its run ends first (a stream never read, or read after the run): the
  run's end answers it, before the run's terminal event, as
  :data:`ABANDONED` with what was read.

A stream whose finish reason arrived before it stopped keeps that finish
reason (the usage chunk, last, may be what was not read).

openai 2.x and anthropic 2.x streams (and the helper streams built on them:
``ChatCompletionStream``, ``MessageStream``) all iterate
``stream._iterator`` and close through ``stream.response.close()`` /
``aclose()``. Replacing the one and hooking the other on this instance keeps
the caller's object, its type and its timing.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from dunetrace.log import capture_internal_errors, warn_once

if TYPE_CHECKING:
    from ._llm_calls import LlmCall

__all__ = ["ABANDONED", "PARTIAL", "watch_stream", "watch_streaming_response"]

#: ``finish_reason`` of a stream its reader stopped before the API's end.
PARTIAL = "partial"
#: ``finish_reason`` of a call still open when its run ended.
ABANDONED = "abandoned"


def watch_stream(call: LlmCall, stream: Any, asynchronous: bool) -> None:
    """Put an observer between the SDK stream and its consumer."""
    call.watched = True
    inner = getattr(stream, "_iterator", None)
    response = getattr(stream, "response", None)
    if inner is None or response is None:
        warn_once(
            f"llm-stream-shape:{call.endpoint.name}",
            "dunetrace: %s returned a stream of an unknown shape (%s); its call is reported without tokens",
            call.endpoint.name,
            type(stream).__name__,
        )
        call.succeeded(None)
        return
    call.reader = call.endpoint.stream_reader()
    if asynchronous:
        stream._iterator = _async_chunks(call, inner)
        _hook_aclose(call, response, lambda: PARTIAL)
    else:
        stream._iterator = _sync_chunks(call, inner)
        _hook_close(call, response, lambda: PARTIAL)
    call.keep_open()


def watch_streaming_response(call: LlmCall, response: Any, streamed: bool, asynchronous: bool) -> None:
    """``.with_streaming_response``: the caller reads the body, when and how
    they choose. Their first ``parse()`` is read as a whole response would
    be (a stream, when they asked for one, is watched from there); a body
    they read otherwise (``iter_lines()``) is timed only, answered when
    they close the response."""
    call.watched = True
    parse = getattr(response, "parse", None)
    http = getattr(response, "http_response", None)
    if not callable(parse) or http is None:
        call.succeeded(None)
        return
    parsed = [False]

    def first_parse() -> bool:
        if parsed[0]:
            return False
        parsed[0] = True
        vars(response).pop("parse", None)  # later parses are the SDK's own (cached)
        return True

    if asynchronous and inspect.iscoroutinefunction(parse):  # AsyncAPIResponse

        async def aparse(*args: Any, **kwargs: Any) -> Any:
            first = first_parse()
            call.reading = True
            try:
                value = await parse(*args, **kwargs)
            except BaseException as exc:
                call.stream_ended(exc, None)
                raise
            finally:
                call.reading = False
            if first:
                call.read(value, streamed, True)
            return value

        response.parse = aparse
        _hook_aclose(call, http, lambda: None if not parsed[0] else "")
    else:

        def sync_parse(*args: Any, **kwargs: Any) -> Any:
            first = first_parse()
            call.reading = True
            try:
                value = parse(*args, **kwargs)
            except BaseException as exc:
                call.stream_ended(exc, None)
                raise
            finally:
                call.reading = False
            if first:
                call.read(value, streamed, False)
            return value

        response.parse = sync_parse
        _hook_close(call, http, lambda: None if not parsed[0] else "")
    call.keep_open()


def _sync_chunks(call: LlmCall, inner: Iterator[Any]) -> Iterator[Any]:
    cut: str | None = PARTIAL
    try:
        while True:
            call.reading = True
            try:
                item = next(inner)
            except StopIteration:
                cut = None
                return
            finally:
                call.reading = False
            call.feed(item)
            yield item
    except GeneratorExit:
        raise  # closed or dropped by the consumer: reported below
    except BaseException as exc:
        call.stream_ended(exc, None)
        raise
    finally:
        call.stream_ended(None, cut)


async def _async_chunks(call: LlmCall, inner: AsyncIterator[Any]) -> AsyncIterator[Any]:
    cut: str | None = PARTIAL
    try:
        while True:
            call.reading = True
            try:
                item = await inner.__anext__()
            except StopAsyncIteration:
                cut = None
                return
            finally:
                call.reading = False
            call.feed(item)
            yield item
    except GeneratorExit:
        raise
    except BaseException as exc:
        call.stream_ended(exc, None)
        raise
    finally:
        call.stream_ended(None, cut)


# ``cut()`` says how a close from outside a read ends the call: a finish
# reason (PARTIAL), None (ended, no finish reason known), or "" (not this
# hook's to answer: a parsed stream's own hook does).


def _hook_close(call: LlmCall, response: Any, cut: Any) -> None:
    original = response.close

    def close() -> None:
        try:
            original()
        finally:
            # httpx closes the response itself when the body ends, while
            # the SDK is still decoding the last events: only a close from
            # outside a read is the consumer stopping the stream.
            how = cut()
            if not call.reading and not call.done and how != "":
                with capture_internal_errors(f"{call.endpoint.name}.close"):
                    call.stream_ended(None, how)

    response.close = close


def _hook_aclose(call: LlmCall, response: Any, cut: Any) -> None:
    original = response.aclose

    async def aclose() -> None:
        try:
            await original()
        finally:
            how = cut()
            if not call.reading and not call.done and how != "":
                with capture_internal_errors(f"{call.endpoint.name}.close"):
                    call.stream_ended(None, how)

    response.aclose = aclose
