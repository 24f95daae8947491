"""``dt.tool`` and ``dt.trace``: decorators that report a function's calls."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar, cast

from .log import internal_error
from .run import get_current_run

if TYPE_CHECKING:
    from .client import Dunetrace
    from .run import Run

__all__ = ["make_tool", "make_trace"]

F = TypeVar("F", bound=Callable[..., Any])

_clock = time.perf_counter


def _bound_args(signature: inspect.Signature | None, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    # f(1) and f(x=1) are the same call: hash the bound arguments by name.
    if signature is not None:
        try:
            return dict(signature.bind(*args, **kwargs).arguments)
        except Exception:  # TypeError for a call that does not bind; the call itself will say so
            pass
    return {"args": list(args), "kwargs": kwargs}


def _signature(fn: Callable[..., Any]) -> inspect.Signature | None:
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def make_tool(fn: F, name: str | None) -> F:
    tool_name = name or getattr(fn, "__name__", None) or "tool"
    signature = _signature(fn)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_tool(*args: Any, **kwargs: Any) -> Any:
            run = get_current_run()
            if run is None:
                return await fn(*args, **kwargs)
            step = run.tool_called(tool_name, _bound_args(signature, args, kwargs))
            start = _clock()
            try:
                result = await fn(*args, **kwargs)
            except BaseException as exc:
                run.tool_responded(tool_name, False, latency_ms=(_clock() - start) * 1000, error=exc, step=step)
                raise
            run.tool_responded(tool_name, True, latency_ms=(_clock() - start) * 1000, output=result, step=step)
            return result

        return cast(F, async_tool)

    @functools.wraps(fn)
    def sync_tool(*args: Any, **kwargs: Any) -> Any:
        run = get_current_run()
        if run is None:
            return fn(*args, **kwargs)
        step = run.tool_called(tool_name, _bound_args(signature, args, kwargs))
        start = _clock()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            run.tool_responded(tool_name, False, latency_ms=(_clock() - start) * 1000, error=exc, step=step)
            raise
        run.tool_responded(tool_name, True, latency_ms=(_clock() - start) * 1000, output=result, step=step)
        return result

    return cast(F, sync_tool)


def _open_run(client: Dunetrace, agent: str, args: tuple[Any, ...], run_options: dict[str, Any]) -> Run | None:
    """The run of one traced call; None (the call runs untraced) if building
    it fails, which the check at decoration makes our bug."""
    try:
        return client.run(agent, user_input=args[0] if args else None, **run_options)
    except Exception as exc:
        internal_error("dt.trace", exc)
        return None


def make_trace(client: Dunetrace, fn: F, agent_id: str | None, run_options: dict[str, Any]) -> F:
    agent = agent_id or getattr(fn, "__name__", None) or "agent"
    # Fail now, at decoration, rather than on the first call.
    client.run(agent, **run_options)

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_traced(*args: Any, **kwargs: Any) -> Any:
            run = _open_run(client, agent, args, run_options)
            if run is None:
                return await fn(*args, **kwargs)
            async with run:
                result = await fn(*args, **kwargs)
                run.final_answer()
                return result

        return cast(F, async_traced)

    @functools.wraps(fn)
    def traced(*args: Any, **kwargs: Any) -> Any:
        run = _open_run(client, agent, args, run_options)
        if run is None:
            return fn(*args, **kwargs)
        with run:
            result = fn(*args, **kwargs)
            run.final_answer()
            return result

    return cast(F, traced)
