"""One agent run: its step counter, the event methods, and the contextvar
that makes it the current run.

A run is opened with ``with dt.run(...)`` / ``async with dt.run(...)``, or by
an integration calling :meth:`Run.start` and :meth:`Run.finish` itself. It
holds counters only, never events, so memory does not grow with its length.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from contextvars import ContextVar, Token
from typing import TYPE_CHECKING, Any

from .exit_reasons import CANCELLED
from .hashing import canonical_json, sha256_hex
from .injection import content_evidence
from .injection import evidence as injection_evidence
from .live import Signal
from .log import capture_internal_errors, internal_error, logger, warn_once
from .policies._model import PolicyViolation

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable
    from types import TracebackType

    from .client import Dunetrace

__all__ = ["Run", "agent_version", "get_current_run", "reset_current_run", "set_current_run"]

_current: ContextVar[Run | None] = ContextVar("dunetrace_current_run", default=None)
_now = time.time
#: Makes "only the first finish() counts" hold across threads: shutdown()
#: may end a run while its own thread ends it too. Reentrant: a SIGTERM
#: handler may end runs on a thread that was inside it.
_finishing = threading.RLock()


def _cancelled(exc: BaseException | None) -> bool:
    """What ends a ``with dt.run()`` block from outside rather than by the
    agent's failure: ``KeyboardInterrupt``, asyncio's and
    concurrent.futures' ``CancelledError`` (by class name: importing asyncio
    here would cost every ``import dunetrace``)."""
    if exc is None:
        return False
    if isinstance(exc, KeyboardInterrupt):
        return True
    return any(cls.__name__ == "CancelledError" for cls in type(exc).__mro__)


def get_current_run() -> Run | None:
    """The run active in this context (thread or asyncio task), or None.

    A run that has finished is never current, even where an integration
    could not reset the context it set (a root that never reported its end
    is finished as abandoned, and stops leaking into later runs then)."""
    run = _current.get()
    if run is not None and run.finished:
        return None
    return run


def set_current_run(run: Run | None) -> Token[Run | None]:
    """Make ``run`` the current run of this context, for an integration that
    drives a run with ``start()`` / ``finish()`` rather than ``with``.
    Returns the token :func:`reset_current_run` takes."""
    return _current.set(run)


def reset_current_run(token: Token[Run | None]) -> None:
    """Undo :func:`set_current_run` (in the context that set it)."""
    _current.reset(token)


def agent_version(system_prompt: str | None, model: str | None, tools: list[str] | None) -> str:
    """A short hash of (system prompt, model, sorted tool names): a changed
    configuration is a new version."""
    text = json.dumps([system_prompt or "", model or "", sorted(tools or [])], ensure_ascii=False)
    return sha256_hex(text.encode("utf-8"))[:12]


#: Run ids made ahead, from one read of the OS's random source per 64 runs:
#: uuid.uuid4() reads it for every run, a system call that lets the
#: interpreter lock go to another thread (the drain) in the middle of the
#: agent's callback. list.pop and list.extend are atomic, so threads share it.
_run_ids: list[str] = []
_VERSION_4 = (~(0xF000 << 64) & ~(0xC000 << 48), (0x4000 << 64) | (0x8000 << 48))


def _new_run_id() -> str:
    """A random (version 4) UUID as text, like ``str(uuid.uuid4())``."""
    try:
        return _run_ids.pop()
    except IndexError:
        pass
    raw = os.urandom(16 * 64)
    clear, set_bits = _VERSION_4
    made = []
    for start in range(0, len(raw), 16):
        h = "%032x" % ((int.from_bytes(raw[start : start + 16], "big") & clear) | set_bits)
        made.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    _run_ids.extend(made[1:])
    return made[0]


if hasattr(os, "register_at_fork"):
    # A forked child draws its own ids: the parent's unused ones would repeat.
    os.register_at_fork(after_in_child=_run_ids.clear)


def _shown(value: Any) -> str:
    """A value for a log line: its repr, or its type where repr raises."""
    try:
        return repr(value)[:200]
    except Exception:
        return f"<{type(value).__name__} whose repr raises>"


def _plain_number(value: Any) -> int | float | None:
    """An int or float subclass as the plain number it holds (its own
    methods are never called); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return int.__index__(value)
    if isinstance(value, float):
        return float.__float__(value)
    return None


def _count(value: Any, field: str) -> int | None:
    """Token counts and lengths: a non-negative int, or left out."""
    if type(value) is int and value >= 0:  # the common case, first
        return value
    if value is None:
        return None
    number = _plain_number(value)
    if number is None or number < 0 or number != number or number == float("inf"):
        warn_once(
            f"bad-count:{field}", "dunetrace: %s must be a non-negative number, got %s; left out", field, _shown(value)
        )
        return None
    return int(number)


def _number(value: Any, field: str) -> float | None:
    if (type(value) is float and value == value) or type(value) is int:  # the common case, first
        return value
    if value is None:
        return None
    number = _plain_number(value)
    if number is None or number != number:
        warn_once(f"bad-number:{field}", "dunetrace: %s must be a number, got %s; left out", field, _shown(value))
        return None
    return number


def _text(value: Any) -> str:
    """Text to send (a model name, a finish reason): a str subclass's own
    ``__str__`` is never called; an object's that raises gives its type."""
    if isinstance(value, str):
        return str.__str__(value)
    try:
        return str(value)
    except Exception:
        warn_once(
            f"bad-str:{type(value).__name__}",
            "dunetrace: str() of a %s raised; its type name was sent",
            type(value).__name__,
        )
        return f"<{type(value).__name__}>"


def _name(value: Any, field: str) -> str:
    if isinstance(value, str) and value:
        return str.__str__(value)
    warn_once(
        f"bad-name:{field}", "dunetrace: %s must be a non-empty string, got %s; sent as 'unknown'", field, _shown(value)
    )
    return "unknown" if value is None or isinstance(value, str) else _text(value)


def _flag(value: Any, default: bool) -> bool:
    if value is True or value is False:
        return value
    try:
        return bool(value)
    except Exception:
        warn_once(
            f"bad-flag:{type(value).__name__}",
            "dunetrace: bool() of a %s raised; taken as %s",
            type(value).__name__,
            default,
        )
        return default


def _length(value: Any) -> int:
    return len(value) if type(value) is str else len(canonical_json(value))


_TERMINAL = frozenset(("run.completed", "run.errored"))


def _watcher_failed(watcher: Any, exc: Exception) -> None:
    """A watcher raised: logged once (re-raised in strict mode, and for an
    exception meant to reach the agent, such as PolicyViolation)."""
    if getattr(exc, "dunetrace_passthrough", False):
        raise exc
    with capture_internal_errors(f"watcher {type(watcher).__name__}"):
        raise exc


class Run:
    """An agent run. Event methods never raise; bad values are left out and
    logged once."""

    __slots__ = (
        "__weakref__",
        "_before_end",
        "_buffer",
        "_client",
        "_fired",
        "_hash",
        "_host",
        "_last_llm",
        "_last_retrieval",
        "_last_step",
        "_last_tool",
        "_policy",
        "_prompt_additions",
        "_steps",
        "_system_prompt",
        "_token",
        "_user_input",
        "_violation",
        "agent_id",
        "agent_version",
        "clock",
        "dropped_events",
        "exit_reason",
        "finished",
        "model",
        "model_override",
        "parent_run_id",
        "resumed_from",
        "run_id",
        "signals",
        "started",
        "tools",
    )

    def __init__(
        self,
        client: Dunetrace,
        agent_id: str,
        *,
        user_input: Any = None,
        system_prompt: str | None = None,
        model: str | None = None,
        tools: list[str] | None = None,
        parent_run_id: str | None = None,
        resumed_from: str | None = None,
    ) -> None:
        if not isinstance(agent_id, str) or not str.strip(agent_id):
            raise ValueError(f"dt.run() needs agent_id, a non-empty string naming the agent; got {_shown(agent_id)}")
        if tools is not None and (isinstance(tools, str) or not all(isinstance(t, str) for t in tools)):
            raise TypeError(f"dt.run(tools=...) takes a list of tool names (strings); got {_shown(tools)}")
        if parent_run_id is not None and (not isinstance(parent_run_id, str) or not parent_run_id):
            raise ValueError(
                f"dt.run(parent_run_id=...) must be a non-empty string or None; got {_shown(parent_run_id)}"
            )
        if resumed_from is not None and (not isinstance(resumed_from, str) or not resumed_from):
            raise ValueError(
                f"dt.run(resumed_from=...) must be the run_id of the run this one resumes, or None; "
                f"got {_shown(resumed_from)}"
            )
        # str subclasses as plain strings: their own methods never run later.
        agent_id = str.__str__(agent_id)
        model = None if model is None else _text(model)
        parent_run_id = None if parent_run_id is None else str.__str__(parent_run_id)
        self._client = client
        self._buffer = client._buffer
        self._host = client.plugins
        self._hash = client.hasher
        self.run_id = _new_run_id()
        self.agent_id = agent_id
        self.model = model
        self.tools = [str.__str__(t) for t in tools] if tools else []
        self.agent_version = agent_version(
            client.hasher.value(system_prompt) if system_prompt is not None else None, model, self.tools
        )
        self.parent_run_id = parent_run_id
        #: The run this one continues after a pause (a human-in-the-loop
        #: interrupt): sent as ``run.started.payload.resumed_from``.
        self.resumed_from = None if resumed_from is None else str.__str__(resumed_from)
        self._user_input = user_input
        # Kept until run.started is sent, for the injection check only.
        self._system_prompt = system_prompt if isinstance(system_prompt, str) else None
        self._steps = itertools.count(1)
        self._last_step = 0
        self._last_llm = self._last_tool = self._last_retrieval = 0
        self.dropped_events = 0
        self.exit_reason: str | None = None
        self.started = False
        self.finished = False
        #: What stamps this run's events (``time.time``). An integration that
        #: reports a framework's events after the fact sets a function giving
        #: the framework's own time of the event being reported.
        self.clock: Callable[[], float] = _now
        self._token: Token[Run | None] | None = None
        #: Live signals fired for this run, in the order they fired.
        self.signals: list[Signal] = []
        self._fired: set[str] = set()
        #: The model later calls of this run use, set by a ``switch_model``
        #: policy; None to keep the agent's own.
        self.model_override: str | None = None
        self._prompt_additions: list[str] | None = None
        #: Set by a ``stop`` policy: raised by the next tool or model call.
        self._violation: PolicyViolation | None = None
        self._policy: Any = None  # the policy engine's counters for this run
        self._before_end: dict[Hashable, Callable[[], None]] | None = None

    def __repr__(self) -> str:
        return f"<dunetrace Run {self.agent_id} {self.run_id}>"

    # -- the wire -------------------------------------------------------------

    def _emit(self, event_type: str, step: int, payload: dict[str, Any]) -> None:
        # The common case, inlined: this is the agent's whole cost per event.
        # The queue holds a tuple; the drain thread builds the wire dict.
        # ``room`` is 0 whenever this path must not be taken (no drain
        # thread yet, a dunetrace_event plugin, the client closed, the bound).
        if not self.started:
            # An event before the run was started (user code given the run by
            # get_current_run() before an integration learned what to start
            # it with): run.started must still come first on the wire.
            self.start()
        watchers = self._client._watchers
        if watchers and event_type in _TERMINAL:
            self._emit_terminal(watchers, event_type, step, payload)
            return
        buffer = self._buffer
        queue = buffer.queue
        if len(queue) < buffer.room:
            queue.append((self, event_type, step, self.clock(), payload))
            if len(queue) == buffer.wake_at:
                buffer.wake.set()
        else:
            self._put(event_type, step, payload)
        if watchers:
            # After the event is queued: a signal it makes fire follows it
            # on the wire. The loop of _observe, inlined: one call less per
            # event while live detection is on.
            for watcher in watchers:
                try:
                    watcher.observe(self, event_type, step, payload)
                except Exception as exc:
                    _watcher_failed(watcher, exc)

    def _emit_terminal(self, watchers: tuple[Any, ...], event_type: str, step: int, payload: dict[str, Any]) -> None:
        # What the run's end makes fire goes out before its end (events after
        # a run's terminal are ignored by the backends), and the terminal is
        # queued even when a callback's exception meant for the agent
        # (PolicyViolation) comes out of them.
        try:
            self._observe(watchers, event_type, step, payload)
        finally:
            self._put(event_type, step, payload)

    def _put(self, event_type: str, step: int, payload: dict[str, Any]) -> None:
        """The rest of ``_emit``: the first event, a full queue, a closed
        client, a ``dunetrace_event`` plugin."""
        buffer = self._buffer
        if self._host.wants_events:
            event = self.wire_event(event_type, step, self.clock(), payload)
            if self._client._filter(event) and not buffer.put(event, event_type):
                self.dropped_events += 1
        elif not buffer.put((self, event_type, step, self.clock(), payload), event_type):
            self.dropped_events += 1

    def _observe(self, watchers: tuple[Any, ...], event_type: str, step: int, payload: dict[str, Any]) -> None:
        # try/except rather than a guard object: this runs for every event
        # while live detection is on, and costs nothing when nothing raises.
        for watcher in watchers:
            try:
                watcher.observe(self, event_type, step, payload)
            except Exception as exc:
                _watcher_failed(watcher, exc)

    def fire(self, signal: Signal, *, key: str | None = None) -> bool:
        """A live signal about this run (see :mod:`dunetrace.live`): kept in
        ``signals``, sent as an ``external.signal`` and handed to the
        client's ``on_signal`` listeners. Each type fires once per run
        (each ``key``, when given: one per policy for ``POLICY_TRIGGERED``);
        False when it had fired already."""
        once = key or signal.type
        if once in self._fired:
            return False
        self._fired.add(once)
        if signal.run is not self:
            signal = Signal(
                signal.type, signal.severity, signal.confidence, signal.step_index, signal.evidence, run=self
            )
        self.signals.append(signal)
        # The listeners first: the event sent below is what policies react
        # to, and a user's callback should hear of a signal before the
        # POLICY_TRIGGERED it causes.
        try:
            for listener in self._client._listeners:
                try:
                    listener(signal)
                except Exception as exc:  # the user's callback: logged, never the agent's problem
                    if getattr(exc, "dunetrace_passthrough", False):
                        raise
                    warn_once(
                        f"listener:{id(listener)}:{type(exc).__name__}",
                        "dunetrace: on_signal callback %r raised %r; it is skipped for this signal",
                        listener,
                        exc,
                    )
        finally:
            # Sent at the step it is about (the collector shows it there),
            # never past the run's last step.
            step = signal.step_index
            if type(step) is not int or not 0 <= step <= self._last_step:
                step = self._last_step
            with capture_internal_errors("run.fire"):
                self._emit("external.signal", step, signal.payload())
        logger.debug("dunetrace: live signal %s on run %s", signal.type, self.run_id)
        return True

    def wire_event(self, event_type: str, step: int, timestamp: float, payload: dict[str, Any]) -> dict[str, Any]:
        """The event as the ingest API takes it."""
        return {
            "event_type": event_type,
            "run_id": self.run_id,
            "agent_id": self.agent_id,
            "agent_version": self.agent_version,
            "step_index": step,
            "timestamp": timestamp,
            "payload": payload,
            "parent_run_id": self.parent_run_id,
        }

    def _next_step(self) -> int:
        step = next(self._steps)
        self._last_step = step
        return step

    # -- lifecycle ------------------------------------------------------------

    def start(self) -> Run:
        """Emit ``run.started``. A run started inside another becomes its
        child unless ``parent_run_id`` was given. Called by ``with``."""
        if self.started:
            return self
        self.started = True
        with capture_internal_errors("run.start"):
            self._client._run_started(self)
            if self.parent_run_id is None:
                parent = get_current_run()
                if parent is not None and parent is not self:
                    self.parent_run_id = parent.run_id
            payload: dict[str, Any] = {"tools": self.tools}
            if self.model is not None:
                payload["model"] = self.model
            if self.resumed_from is not None:
                payload["resumed_from"] = self.resumed_from
            user_input, system_prompt = self._user_input, self._system_prompt
            self._user_input = self._system_prompt = None  # the raw text is not kept past this point
            if user_input is not None:
                payload["input_hash"] = self._hash.value(user_input)
            if user_input is not None or system_prompt:
                # Checked on the raw input and system prompt; only the evidence
                # travels, where the upstream backend reads it (CONTRACT.md).
                try:
                    found = injection_evidence(user_input, system_prompt)
                except Exception:  # an input whose own methods raise: no evidence
                    found = None
                if found is not None:
                    payload["injection_signal"] = found
            self._emit("run.started", 0, payload)
            if self._host.wants_runs:
                self._host.hook.dunetrace_run_started(run=self)
        return self

    def finish(self, error: BaseException | None = None, exit_reason: str | None = None) -> None:
        """Emit ``run.completed``, or ``run.errored`` when ``error`` is given.
        Only the first call counts."""
        with _finishing:
            if self.finished:
                return
            self.finished = True
        with capture_internal_errors("run.finish"):
            self._client._run_finished(self)
            if not self.started:
                self.start()
            callbacks, self._before_end = self._before_end, None
            if callbacks:
                for callback in list(callbacks.values()):
                    with capture_internal_errors("run.before_end"):
                        callback()
            payload: dict[str, Any]
            if error is None:
                payload = {
                    "exit_reason": exit_reason or self.exit_reason or "completed",
                    "total_steps": self._last_step,
                }
                event_type = "run.completed"
            else:
                payload = {
                    "error_type": _text(type(error).__name__),
                    "error_hash": self._hash.error(error),
                    "total_steps": self._last_step,
                }
                event_type = "run.errored"
            if self.dropped_events:
                payload["dropped_events"] = self.dropped_events
            self._emit(event_type, self._last_step, payload)
            if self._host.wants_runs:
                self._host.hook.dunetrace_run_finished(run=self, error=error)

    def before_end(self, key: Hashable, callback: Callable[[], None] | None) -> None:
        """Have ``callback()`` called once, just before this run's terminal
        event is queued, whoever ends the run (its ``with`` block, an
        integration, ``dt.shutdown()``); ``None`` forgets the callback given
        under ``key``. An integration answers there the calls it still holds
        open for the run (a stream not read to its end), so that no call of
        a run is answered after its end, nor left unanswered."""
        if callback is None:
            if self._before_end is not None:
                self._before_end.pop(key, None)
            return
        if self.finished:
            return
        if self._before_end is None:
            self._before_end = {}
        self._before_end[key] = callback

    def __enter__(self) -> Run:
        self.start()
        self._token = _current.set(self)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                _current.reset(token)
            except ValueError:  # exited in another context than entered
                _current.set(None)
        if _cancelled(exc):
            # task.cancel(), an asyncio timeout around the run, Ctrl-C: the
            # agent was stopped, it did not fail.
            self.finish(exit_reason=CANCELLED)
        else:
            self.finish(exc)

    async def __aenter__(self) -> Run:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    # -- policies -------------------------------------------------------------

    def raise_if_stopped(self) -> None:
        """Raise :class:`dunetrace.PolicyViolation` when a ``stop`` policy
        has triggered for this run; otherwise nothing. ``tool_called`` and
        ``llm_called`` call it first."""
        violation = self._violation
        if violation is not None:
            raise PolicyViolation(violation.policy, violation.reason, violation.run_id)

    @property
    def stopped(self) -> bool:
        """True once a ``stop`` policy has triggered for this run (the next
        ``raise_if_stopped`` raises)."""
        return self._violation is not None

    def add_prompt_addition(self, text: str) -> None:
        """Queue a message for the next model call (``inject_prompt``)."""
        if self._prompt_additions is None:
            self._prompt_additions = []
        self._prompt_additions.append(text)

    def pop_prompt_addition(self) -> str | None:
        """The messages ``inject_prompt`` policies added since the last call
        (joined by blank lines), to add before the next model call; None
        when there are none. Each is handed out once."""
        added, self._prompt_additions = self._prompt_additions, None
        return "\n\n".join(added) if added else None

    # -- events ---------------------------------------------------------------

    def llm_called(self, model: str | None = None, prompt_tokens: int | None = None, *, prompt: Any = None) -> int:
        """An LLM call begins. Returns its step; pass it to ``llm_responded``
        when calls overlap. ``prompt`` is only measured, never sent. Raises
        :class:`dunetrace.PolicyViolation` only after a ``stop`` policy
        triggered for this run (then no event is sent)."""
        if self._violation is not None:
            self.raise_if_stopped()
        step = self._last_llm = self._last_step = next(self._steps)  # _next_step, inline
        try:
            payload: dict[str, Any] = {}
            if model is not None:
                payload["model"] = model if type(model) is str else _text(model)
            tokens = _count(prompt_tokens, "prompt_tokens")
            if tokens is not None:
                payload["prompt_tokens"] = tokens
            if prompt is not None:
                payload["prompt_hash"] = self._hash.value(prompt)
            self._emit("llm.called", step, payload)
        except Exception as exc:
            internal_error("run.llm_called", exc)
        return step

    def llm_responded(
        self,
        completion_tokens: int | None = None,
        latency_ms: float | None = None,
        finish_reason: str | None = None,
        output_length: int | None = None,
        *,
        prompt_tokens: int | None = None,
        output: Any = None,
        step: int | None = None,
        error: BaseException | None = None,
    ) -> None:
        """An LLM call ended. ``output`` (the completion) is hashed and
        measured in-process; only its hash and length are sent. ``error``:
        the exception a failed call raised, sent as its class name
        (``error_type``) and hashed message (``error_hash``)."""
        try:
            payload: dict[str, Any] = {}
            if error is not None:
                payload["error_type"] = _text(type(error).__name__)
                payload["error_hash"] = self._hash.error(error)
            # Each check inline for the common value, _count / _number for the rest.
            if type(completion_tokens) is int and completion_tokens >= 0:
                payload["completion_tokens"] = completion_tokens
            elif completion_tokens is not None:
                tokens = _count(completion_tokens, "completion_tokens")
                if tokens is not None:
                    payload["completion_tokens"] = tokens
            if type(prompt_tokens) is int and prompt_tokens >= 0:
                payload["prompt_tokens"] = prompt_tokens
            elif prompt_tokens is not None:
                tokens = _count(prompt_tokens, "prompt_tokens")
                if tokens is not None:
                    payload["prompt_tokens"] = tokens
            if type(latency_ms) is float and latency_ms == latency_ms:
                payload["latency_ms"] = latency_ms
            elif latency_ms is not None:
                latency = _number(latency_ms, "latency_ms")
                if latency is not None:
                    payload["latency_ms"] = latency
            if finish_reason is not None:
                payload["finish_reason"] = finish_reason if type(finish_reason) is str else _text(finish_reason)
            if output is not None:
                # One canonical text serves both the hash and the length.
                text = canonical_json(output)
                payload["output_hash"] = self._hash.text(text)
                if output_length is None:
                    output_length = len(output) if type(output) is str else len(text)
            if type(output_length) is int and output_length >= 0:
                payload["output_length"] = output_length
            elif output_length is not None:
                length = _count(output_length, "output_length")
                if length is not None:
                    payload["output_length"] = length
            self._emit("llm.responded", step if type(step) is int else self._last_llm, payload)
        except Exception as exc:
            internal_error("run.llm_responded", exc)

    def tool_called(self, name: str, args: Any = None) -> int:
        """A tool call begins. ``args`` are hashed (canonical JSON), never
        sent; their length is (``args_length``, OVERSIZED_TOOL_ARGUMENTS).
        Raises :class:`dunetrace.PolicyViolation` only after a ``stop``
        policy triggered for this run (then no event is sent)."""
        if self._violation is not None:
            self.raise_if_stopped()
        step = self._last_tool = self._last_step = next(self._steps)  # _next_step, inline
        try:
            tool = name if type(name) is str and name else _name(name, "tool_name")
            payload: dict[str, Any] = {"tool_name": tool}
            if args is not None:
                text = canonical_json(args)  # never raises: a placeholder for what cannot be read
                payload["args_hash"] = self._hash.text(text)
                payload["args_length"] = len(text)
            self._emit("tool.called", step, payload)
        except Exception as exc:
            internal_error("run.tool_called", exc)
        return step

    def tool_responded(
        self,
        name: str,
        success: bool,
        output_length: int | None = None,
        latency_ms: float | None = None,
        error: BaseException | str | None = None,
        *,
        output: Any = None,
        step: int | None = None,
        from_cache: bool | None = None,
    ) -> None:
        """A tool call ended. ``output`` is only measured, and checked for
        injected instructions while live detection is on (only the evidence
        is sent); ``error`` is hashed. ``from_cache=True`` says the
        framework answered from its tool cache."""
        try:
            tool = name if type(name) is str and name else _name(name, "tool_name")
            payload: dict[str, Any] = {
                "tool_name": tool,
                "success": success if success is True else _flag(success, error is None),
            }
            if from_cache is not None:
                payload["from_cache"] = _flag(from_cache, False)
            if output is not None and output_length is None:
                output_length = _length(output)
            if output_length is not None:  # the checks only when given: this is a hot path
                length = _count(output_length, "output_length")
                if length is not None:
                    payload["output_length"] = length
            if type(latency_ms) is float and latency_ms == latency_ms:  # the common case, no call
                payload["latency_ms"] = latency_ms
            elif latency_ms is not None:
                latency = _number(latency_ms, "latency_ms")
                if latency is not None:
                    payload["latency_ms"] = latency
            if error is not None:
                payload["error_hash"] = self._hash.error(error)
                if isinstance(error, BaseException):  # the class name is metadata, sent
                    payload["error_type"] = _text(type(error).__name__)
            if output is not None and self._client.detectors is not None:
                found = content_evidence(output, "output")
                if found is not None:
                    payload["injection_signal"] = found
            self._emit("tool.responded", step if type(step) is int else self._last_tool, payload)
        except Exception as exc:
            internal_error("run.tool_responded", exc)

    def retrieval_called(self, index_name: str, query: Any = None) -> int:
        """A retrieval begins. ``query`` is hashed, never sent."""
        step = self._last_retrieval = self._last_step = next(self._steps)  # _next_step, inline
        try:
            index = index_name if type(index_name) is str and index_name else _name(index_name, "index_name")
            payload: dict[str, Any] = {"index_name": index}
            if query is not None:
                payload["query_hash"] = self._hash.value(query)
            self._emit("retrieval.called", step, payload)
        except Exception as exc:
            internal_error("run.retrieval_called", exc)
        return step

    def retrieval_responded(
        self,
        index_name: str,
        result_count: int,
        top_score: float | None = None,
        latency_ms: float | None = None,
        *,
        step: int | None = None,
        documents: Any = None,
    ) -> None:
        """A retrieval ended. ``documents`` (their texts) are only checked
        for injected instructions while live detection is on, never sent:
        the evidence goes in ``injection_signal``."""
        try:
            index = index_name if type(index_name) is str and index_name else _name(index_name, "index_name")
            payload: dict[str, Any] = {"index_name": index}
            count = _count(result_count, "result_count")
            if count is not None:
                payload["result_count"] = count
            payload["top_score"] = _number(top_score, "top_score")
            latency = _number(latency_ms, "latency_ms")
            if latency is not None:
                payload["latency_ms"] = latency
            if documents is not None and self._client.detectors is not None:
                found = content_evidence(documents, "documents", split_lists=True)
                if found is not None:
                    payload["injection_signal"] = found
            self._emit("retrieval.responded", step if type(step) is int else self._last_retrieval, payload)
        except Exception as exc:
            internal_error("run.retrieval_responded", exc)

    def external_signal(self, name: str, source: str | None = None, **meta: Any) -> None:
        """Something outside the agent happened (a 429, a deploy, a page).
        Does not advance the step. ``meta`` is sent as is: metadata only
        (what JSON cannot hold is made valid when the batch is written)."""
        try:
            payload: dict[str, Any] = dict(meta)
            payload["signal_name"] = _name(name, "signal_name")
            if source is not None:
                payload["source"] = _text(source)
            self._emit("external.signal", self._last_step, payload)
        except Exception as exc:
            internal_error("run.external_signal", exc)

    def embedding(
        self,
        model: str | None,
        input_count: int | None,
        latency_ms: float | None,
        *,
        input_tokens: int | None = None,
        source: str | None = None,
        success: bool = True,
    ) -> None:
        """An embedding call made inside the run (an embeddings API, a
        framework's embedding model): sent as an ``external.signal`` named
        ``EMBEDDING`` with ``model``, ``input_count`` (texts embedded),
        ``latency_ms``, ``input_tokens`` when the API reports them, and
        ``success``. The texts are not sent, nor hashed. Does not advance
        the step: an embedding is not a step of the agent."""
        try:
            meta: dict[str, Any] = {"success": _flag(success, True)}
            if model is not None:
                meta["model"] = _text(model)
            count = _count(input_count, "input_count")
            if count is not None:
                meta["input_count"] = count
            latency = _number(latency_ms, "latency_ms")
            if latency is not None:
                meta["latency_ms"] = latency
            tokens = _count(input_tokens, "input_tokens")
            if tokens is not None:
                meta["input_tokens"] = tokens
            self.external_signal("EMBEDDING", source=source, **meta)
        except Exception as exc:
            internal_error("run.embedding", exc)

    def final_answer(self) -> None:
        """The agent produced its final answer: the run completes with
        ``exit_reason="final_answer"``."""
        self.exit_reason = "final_answer"

    @property
    def step_index(self) -> int:
        """The last step issued."""
        return self._last_step
