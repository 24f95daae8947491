"""Wrapping one SDK client instance: its LLM methods report into the
current run.

Only the instance is touched, never the SDK's classes: each method is
replaced by an attribute on that client's own resource object
(``client.chat.completions.create``), so the client is still an ``OpenAI`` /
``Anthropic`` for ``isinstance`` and for type checkers, other clients in the
process are unaffected, and unwrapping deletes the attributes again.
Wrapping twice is wrapping once.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import sys
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from dunetrace.log import capture_internal_errors, warn_once
from dunetrace.model_calls import in_framework_model_call
from dunetrace.plugins import hookimpl
from dunetrace.run import get_current_run

from ._llm_calls import Endpoint, LlmCall, internal_error

if TYPE_CHECKING:
    from dunetrace import Dunetrace, Run

__all__ = [
    "Wrapping",
    "begin_call",
    "is_wrapped",
    "reporting_method",
    "retry_method",
    "unwrap_client",
    "wrap_client",
]

_STATE = "_dunetrace_wrapping"

# The SDK resources build these views lazily and keep them (functools
# cached_property in openai 2.x / anthropic 2.x); each captures the
# resource's methods when built. Dropping them on wrap and unwrap makes the
# next access see the current methods.
_CACHED_VIEWS = ("with_raw_response", "with_streaming_response")

_lock = threading.RLock()

MethodFactory = Callable[[Callable[..., Any], "Wrapping"], Callable[..., Any]]


class _Patch:
    __slots__ = ("attr", "had", "owner", "previous")

    def __init__(self, owner: Any, attr: str) -> None:
        self.owner = owner
        self.attr = attr
        own = vars(owner)
        self.had = attr in own
        self.previous = own.get(attr)

    def apply(self, value: Any) -> None:
        setattr(self.owner, self.attr, value)
        _drop_views(self.owner)

    def undo(self) -> None:
        if self.had:
            setattr(self.owner, self.attr, self.previous)
        else:
            vars(self.owner).pop(self.attr, None)
        _drop_views(self.owner)


def _drop_views(owner: Any) -> None:
    own = vars(owner)
    for name in _CACHED_VIEWS:
        own.pop(name, None)


class Wrapping:
    """The state of one wrapped client. ``active`` turns off every wrapper
    at once, including ones a caller still holds (a ``with_raw_response``
    view built while wrapped)."""

    __slots__ = ("active", "patches", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.active = True
        self.patches: list[_Patch] = []


def _add_prompt(run: Run, endpoint: str, kwargs: dict[str, Any]) -> None:
    """An inject_prompt policy: its message goes at the end of this request's
    conversation as a user message (OpenAI's ``messages`` or Responses
    ``input``, Anthropic's ``messages``, which joins consecutive user turns).
    The caller's list is left as it was: the request gets a new one."""
    key = "input" if endpoint == "openai.responses" else "messages"
    conversation = kwargs.get(key)
    if isinstance(conversation, str) and key == "input":
        conversation = [{"role": "user", "content": conversation}]
    if not isinstance(conversation, (list, tuple)):
        return  # nothing to add to (a stored prompt, a previous_response_id): kept for the next call
    added = run.pop_prompt_addition()
    if added is not None:
        kwargs[key] = [*conversation, {"role": "user", "content": added}]


def begin_call(run: Run, endpoint: Endpoint, kwargs: dict[str, Any]) -> LlmCall | None:
    if run.model_override is not None and "model" in kwargs:
        # A switch_model policy: this request, and every later one of the run.
        kwargs["model"] = run.model_override
    if run._prompt_additions:
        _add_prompt(run, endpoint.name, kwargs)
    # try/except rather than entering capture_internal_errors on every call
    # (a context manager costs microseconds); the guard handles the failure.
    # After a stop policy, LlmCall raises PolicyViolation, which the guard
    # lets through: the request is never sent.
    try:
        return LlmCall(run, endpoint, kwargs)
    except Exception as exc:
        internal_error(f"{endpoint.name}.call", exc)
        return None


async def _awaited(call: LlmCall, awaitable: Any, kwargs: dict[str, Any]) -> Any:
    try:
        result = await awaitable
    except BaseException as exc:
        call.failed(exc)
        raise
    return await call.areturned(result, kwargs)


def reporting_method(endpoint: Endpoint) -> MethodFactory:
    """A factory for a wrapper of a request method (``create``): silent
    outside a run and inside a model call a framework integration reports
    (this context only: ``dunetrace.model_calls``); otherwise one
    :class:`LlmCall`."""

    def make(original: Callable[..., Any], wrapping: Wrapping) -> Callable[..., Any]:
        # openai 2.x decorates the async ``create`` with ``required_args``, a
        # plain wrapper: the coroutine function is found under __wrapped__.
        if inspect.iscoroutinefunction(inspect.unwrap(original)):

            @functools.wraps(original)
            async def async_method(*args: Any, **kwargs: Any) -> Any:
                run = get_current_run()
                if run is None or not wrapping.active or in_framework_model_call():
                    return await original(*args, **kwargs)
                call = begin_call(run, endpoint, kwargs)
                if call is None:
                    return await original(*args, **kwargs)
                try:
                    result = await original(*args, **kwargs)
                except BaseException as exc:
                    call.failed(exc)
                    raise
                return await call.areturned(result, kwargs)

            return async_method

        @functools.wraps(original)
        def method(*args: Any, **kwargs: Any) -> Any:
            run = get_current_run()
            if run is None or not wrapping.active or in_framework_model_call():
                return original(*args, **kwargs)
            call = begin_call(run, endpoint, kwargs)
            if call is None:
                return original(*args, **kwargs)
            try:
                result = original(*args, **kwargs)
            except BaseException as exc:
                call.failed(exc)
                raise
            if inspect.isawaitable(result):
                # An async method behind a decorator that hid it (no
                # __wrapped__): report when the caller awaits it.
                return _awaited(call, result, kwargs)
            return call.returned(result, kwargs, False)

        return method

    return make


def retry_method(endpoint: Endpoint) -> MethodFactory:
    """A wrapper of the SDK client's ``_sleep_for_retry``, which the
    Stainless-generated SDKs (openai 1.x/2.x, anthropic) call before each
    retry of a failed request: inside the failed attempt's ``except`` block,
    with the failed response when there was one. The retried 429 or 5xx is
    otherwise invisible: the caller only sees the last attempt. Reported as
    an ``external.signal`` with ``retrying=True`` (a framework integration
    reporting the same LLM call does not see retries, so this is not
    counted twice)."""

    def make(original: Callable[..., Any], wrapping: Wrapping) -> Callable[..., Any]:
        def signal(kwargs: dict[str, Any]) -> None:
            run = get_current_run()
            if run is None or not wrapping.active:
                return
            try:
                found = endpoint.retry_signal(kwargs.get("response"), sys.exc_info()[1])
                if found is not None:
                    name, meta = found
                    attempt = kwargs.get("retries_taken")
                    if isinstance(attempt, int):
                        meta["attempt"] = attempt + 1
                    run.external_signal(name, source=endpoint.source, retrying=True, **meta)
            except Exception as exc:
                internal_error(f"{endpoint.source}.retry", exc)

        if inspect.iscoroutinefunction(inspect.unwrap(original)):

            @functools.wraps(original)
            async def async_sleep(*args: Any, **kwargs: Any) -> Any:
                signal(kwargs)
                return await original(*args, **kwargs)

            return async_sleep

        @functools.wraps(original)
        def sleep(*args: Any, **kwargs: Any) -> Any:
            signal(kwargs)
            return original(*args, **kwargs)

        return sleep

    return make


def _copying_method(rewrap: Callable[[Any], Any]) -> MethodFactory:
    """``client.with_options(...)`` / ``client.copy(...)`` build a new client;
    it is wrapped too, so ``client.with_options(timeout=5).chat...`` reports."""

    def make(original: Callable[..., Any], wrapping: Wrapping) -> Callable[..., Any]:
        @functools.wraps(original)
        def copy(*args: Any, **kwargs: Any) -> Any:
            new = original(*args, **kwargs)
            if wrapping.active:
                with capture_internal_errors(f"{wrapping.source}.copy"):
                    rewrap(new)
            return new

        return copy

    return make


class WrappedClients:
    """Plugin registered on a Dunetrace client: the SDK clients wrapped
    through it, unwrapped when it shuts down."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._clients: weakref.WeakSet[Any] = weakref.WeakSet()

    def add(self, client: Any) -> None:
        with contextlib.suppress(TypeError):  # not weak-referenceable: it simply stays wrapped
            self._clients.add(client)

    @hookimpl
    def dunetrace_shutdown(self, client: Dunetrace) -> None:
        with capture_internal_errors(f"{self.source}.shutdown"):
            for wrapped in list(self._clients):
                unwrap_client(wrapped)


def _remember(dunetrace: Dunetrace, source: str, client: Any) -> None:
    name = f"dunetrace.{source}"
    with _lock:
        plugin = dunetrace.plugins.get_plugin(name)
        if plugin is None:
            plugin = WrappedClients(source)
            dunetrace.plugins.register(plugin, name=name)
    if isinstance(plugin, WrappedClients):
        plugin.add(client)


def _resolve(client: Any, path: tuple[str, ...]) -> Any:
    owner = client
    for name in path:
        owner = getattr(owner, name)
    return owner


def wrap_client(
    client: Any,
    source: str,
    methods: Sequence[tuple[tuple[str, ...], str, MethodFactory]],
    rewrap: Callable[[Any], Any],
    dunetrace: Dunetrace | None,
) -> Any:
    """Replace ``methods`` (``(path to the resource, method name, factory)``)
    on this client instance. A method the installed SDK does not have is
    skipped (logged once)."""
    with _lock:
        if dunetrace is not None:
            _remember(dunetrace, source, client)
        if isinstance(vars(client).get(_STATE), Wrapping):
            return client
        wrapping = Wrapping(source)
        targets = [((), "copy", _copying_method(rewrap)), ((), "with_options", _copying_method(rewrap))]
        for path, attr, make in [*methods, *targets]:
            try:
                owner = _resolve(client, path)  # () is the client itself
                original = getattr(owner, attr)
            except AttributeError:
                where = ".".join(("client", *path, attr))
                warn_once(
                    f"wrap-missing:{source}:{where}",
                    "dunetrace: this %s SDK has no %s; it is not reported",
                    source,
                    where,
                )
                continue
            patch = _Patch(owner, attr)
            patch.apply(make(original, wrapping))
            wrapping.patches.append(patch)
        vars(client)[_STATE] = wrapping
    return client


def unwrap_client(client: Any) -> bool:
    """Put the client's own methods back. True when it was wrapped."""
    with _lock:
        wrapping = vars(client).pop(_STATE, None)
        if not isinstance(wrapping, Wrapping):
            return False
        wrapping.active = False
        for patch in reversed(wrapping.patches):
            patch.undo()
        return True


def is_wrapped(client: Any) -> bool:
    return isinstance(getattr(client, "__dict__", {}).get(_STATE), Wrapping)
