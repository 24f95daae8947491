"""Relays for a streamed answer that outlives its span: the run is made
current around each read, and ends with the stream. Imports no LlamaIndex."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from dunetrace.run import Run, reset_current_run, set_current_run

__all__ = ["relay_tokens"]

OnEnd = Callable[[BaseException | None], None]
OnStop = Callable[[], None]


def _nothing() -> None:
    pass


def relay_tokens(
    tokens: Any, run: Run, on_end: OnEnd, on_stop: OnStop = _nothing
) -> Iterator[Any] | AsyncIterator[Any] | None:
    """A generator yielding what ``tokens`` yields, or None when ``tokens``
    is neither an iterator nor an async iterator. ``on_stop()`` is called
    when the caller closes it early, before the source is closed;
    ``on_end(error)`` last, however it ended."""
    if hasattr(tokens, "__next__"):
        return _relay(tokens, run, on_end, on_stop)
    if hasattr(tokens, "__anext__"):
        return _async_relay(tokens, run, on_end, on_stop)
    return None


def _relay(tokens: Iterator[Any], run: Run, on_end: OnEnd, on_stop: OnStop) -> Iterator[Any]:
    error: BaseException | None = None
    try:
        while True:
            token = set_current_run(run)
            try:
                item = next(tokens)
            except StopIteration:
                return
            finally:
                reset_current_run(token)
            yield item
    except GeneratorExit:  # the caller stopped reading: stop the source too
        on_stop()
        close = getattr(tokens, "close", None)
        if close is not None:
            close()
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        on_end(error)


async def _async_relay(tokens: AsyncIterator[Any], run: Run, on_end: OnEnd, on_stop: OnStop) -> AsyncIterator[Any]:
    error: BaseException | None = None
    try:
        while True:
            token = set_current_run(run)
            try:
                item = await tokens.__anext__()
            except StopAsyncIteration:
                return
            finally:
                reset_current_run(token)
            yield item
    except GeneratorExit:
        on_stop()
        aclose = getattr(tokens, "aclose", None)
        if aclose is not None:
            await aclose()
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        on_end(error)
