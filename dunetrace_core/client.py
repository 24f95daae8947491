"""``Dunetrace``: the client a user builds once per process."""

from __future__ import annotations

import os
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, overload

from . import lifecycle
from .buffer import Buffer
from .detectors._live import live_detectors
from .hashing import Hasher
from .http_export import HttpExporter
from .live import Signal, Watcher
from .log import capture_internal_errors, logger, warn_once
from .options import Options
from .plugins import PluginHost
from .policies import ENV as POLICIES_ENV
from .policies import Policy, PolicyEngine, load_policies
from .run import Run
from .stdout_export import StdoutExporter
from .wrappers import make_tool, make_trace

__all__ = ["Dunetrace"]

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C")

_REQUIRED = ("event_type", "run_id", "agent_id", "agent_version")


class Dunetrace:
    """Reports agent runs to Dunetrace.

    ``endpoint`` defaults to ``DUNETRACE_ENDPOINT`` or http://localhost:8001,
    ``api_key`` to ``DUNETRACE_API_KEY`` (empty for a dev-mode backend). The
    other options are documented on :class:`dunetrace.options.Options`.
    Building a client starts nothing: the drain thread starts with the first
    event, or when a plugin implementing ``dunetrace_drain`` is registered.
    """

    def __init__(
        self,
        endpoint: str | None = None,
        api_key: str | None = None,
        *,
        on_signal: Callable[[Signal], Any] | None = None,
        detectors: Any = None,
        policies: Iterable[Policy | dict[str, Any]] | None = None,
        **options: Any,
    ) -> None:
        #: Fed every event of every run, on the emitting thread (live detectors,
        #: policies; see :mod:`dunetrace.live`). A tuple: read per event.
        self._watchers: tuple[Watcher, ...] = ()
        #: Called with each live signal, on the thread that emitted its event.
        self._listeners: tuple[Callable[[Signal], Any], ...] = ()
        if on_signal is not None:
            self.on_signal(on_signal)
        #: The live detectors (:mod:`dunetrace.detectors`), or None when
        #: ``detectors=False`` (or ``DUNETRACE_LIVE_DETECTORS=off`` and no
        #: ``detectors=``); a dict in the detectors.yml form tunes them.
        self.detectors = live_detectors(detectors)
        if self.detectors is not None:
            self.add_watcher(self.detectors)
        #: Applies policies; a watcher of this client's runs once it has one.
        self._policies = PolicyEngine()
        self._add_policies(policies)
        self.options = Options.build(endpoint, api_key, **options)
        # The project's secret keys every content hash (hashing.py): the hash
        # key when set, else the API key.
        self.hasher = Hasher(self.options.hash_key or self.options.api_key or None)
        if not self.hasher.keyed:
            warn_once(
                "unkeyed-hashes",
                "dunetrace: no API key or DUNETRACE_HASH_KEY: content hashes are plain SHA-256, which "
                "anyone holding them can confirm guesses against (short values, known prompts); set "
                "DUNETRACE_HASH_KEY to key them",
            )
        self.plugins = PluginHost()
        self._http: HttpExporter | None = None
        exporters = self.options.exporters
        if "http" in exporters:
            self._http = HttpExporter(self.options)
            self.plugins.register(self._http, name="dunetrace.http")
        if "stdout" in exporters:
            self.plugins.register(StdoutExporter(), name="dunetrace.stdout")
        self.plugins.load_entry_points()
        self._buffer = Buffer(
            self.options,
            self.plugins,
            self._http.send_deploy if self._http is not None else None,
            before_drain=self._drain_plugins,
        )
        self.plugins.on_change = self._plugins_changed
        self._plugins_changed()
        self._shut = False
        self._delivered_all = False  # what the first shutdown() found
        # Reentrant: a SIGTERM handler (lifecycle.py) may close the client on
        # the thread that was inside this lock.
        self._shutdown_lock = threading.RLock()
        #: Runs started and not yet finished, oldest first, held weakly: a
        #: run is added when it starts and leaves when it ends or is gone.
        self._open_runs: dict[int, weakref.ref[Run]] = {}
        self.plugins.hook.dunetrace_configure.call_historic(kwargs={"client": self})
        lifecycle.track(self)

    def __repr__(self) -> str:
        return f"<Dunetrace endpoint={self.options.endpoint!r}>"

    # -- live judgement -------------------------------------------------------

    def on_signal(self, callback: Callable[[Signal], Any]) -> Callable[[Signal], Any]:
        """Call ``callback(signal)`` for every live signal of every run, on
        the thread that emitted the event that made it fire. A callback that
        raises is logged once and never reaches the agent. Returns the
        callback (usable as a decorator)."""
        if not callable(callback):
            raise TypeError(f"dt.on_signal() takes a function called with each signal; got {callback!r}")
        self._listeners = (*self._listeners, callback)
        return callback

    def add_policy(self, name: str, *, when: Any, then: Any) -> Policy:
        """Act on every run where ``when`` holds, once per run: ``then`` is
        ``"stop"``, ``"log"``, ``{"switch_model": model}`` or
        ``{"inject_prompt": message}``; ``when`` is one trigger, e.g.
        ``{"tool_calls": 5, "tool": "search"}`` or ``{"signal": "TOOL_LOOP"}``
        (see the README's Policies section). Checked now: a mistake raises
        :class:`dunetrace.policies.PolicyError` naming the field."""
        policy = Policy.make(name, when, then)
        self._add_policy(policy)
        return policy

    @property
    def policies(self) -> tuple[Policy, ...]:
        """The policies in force, in the order they were added."""
        return self._policies.policies

    def _add_policy(self, policy: Policy) -> None:
        self._policies.add(policy)
        self.add_watcher(self._policies)  # only once there is a policy: no cost before

    def _add_policies(self, policies: Iterable[Policy | dict[str, Any]] | None) -> None:
        if policies is not None:
            if isinstance(policies, (str, bytes, dict)) or not isinstance(policies, Iterable):
                raise TypeError(f"Dunetrace(policies=...) takes a list of policies; got {policies!r}")
            for index, item in enumerate(policies):
                self._add_policy(Policy.from_mapping(item, where=f"policies[{index}]"))
        path = os.environ.get(POLICIES_ENV)
        if path:
            for policy in load_policies(path):
                self._add_policy(policy)

    def add_watcher(self, watcher: Watcher) -> None:
        """Feed ``watcher.observe(run, event_type, step, payload)`` every
        event of every run (see :mod:`dunetrace.live`)."""
        if watcher not in self._watchers:
            self._watchers = (*self._watchers, watcher)

    def remove_watcher(self, watcher: Watcher) -> None:
        self._watchers = tuple(w for w in self._watchers if w is not watcher)

    # -- runs ---------------------------------------------------------------

    def run(
        self,
        agent_id: str,
        *,
        user_input: Any = None,
        system_prompt: str | None = None,
        model: str | None = None,
        tools: list[str] | None = None,
        parent_run_id: str | None = None,
        resumed_from: str | None = None,
    ) -> Run:
        """A run of ``agent_id``, for ``with`` / ``async with``.

        ``user_input`` and ``system_prompt`` are hashed, never sent. A run
        opened inside another is its child. The run emits ``run.completed``
        on a clean exit, ``run.errored`` on an exception (re-raised as is).
        ``resumed_from`` names the run this one continues after a pause
        (a human-in-the-loop interrupt; see :mod:`dunetrace.exit_reasons`).
        """
        return Run(
            self,
            agent_id,
            user_input=user_input,
            system_prompt=system_prompt,
            model=model,
            tools=tools,
            parent_run_id=parent_run_id,
            resumed_from=resumed_from,
        )

    @overload
    def tool(self, fn: F, *, name: str | None = None) -> F: ...
    @overload
    def tool(self, fn: None = None, *, name: str | None = None) -> Callable[[F], F]: ...

    def tool(self, fn: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
        """Report each call of a sync or async function as a tool call of the
        current run (``tool.called`` / ``tool.responded``). Outside a run, the
        function runs untouched. Use as ``dt.tool(fn)``, ``@dt.tool`` or
        ``@dt.tool(name="search")``."""
        if name is not None and (not isinstance(name, str) or not name):
            raise ValueError(f"dt.tool(name=...) must be a non-empty string; got {name!r}")
        if fn is None:
            return lambda f: make_tool(f, name)
        if not callable(fn):
            raise TypeError(f"dt.tool() wraps a function; got {fn!r}")
        return make_tool(fn, name)

    @overload
    def trace(self, fn: F, *, agent_id: str | None = None, **run_options: Any) -> F: ...
    @overload
    def trace(self, fn: None = None, *, agent_id: str | None = None, **run_options: Any) -> Callable[[F], F]: ...

    def trace(self, fn: F | None = None, *, agent_id: str | None = None, **run_options: Any) -> F | Callable[[F], F]:
        """One run per call of a sync or async function; its first argument
        is the user input (hashed). Returning is a final answer, raising is
        ``run.errored``. ``agent_id`` defaults to the function's name."""
        if fn is None:
            return lambda f: make_trace(self, f, agent_id, run_options)
        if not callable(fn):
            raise TypeError(f"dt.trace() wraps a function; got {fn!r}")
        return make_trace(self, fn, agent_id, run_options)

    # -- LLM clients ----------------------------------------------------------

    def wrap_openai(self, client: C) -> C:
        """Report the calls of an ``OpenAI`` / ``AsyncOpenAI`` client made
        inside a run; returns the same client. Undone by
        ``dunetrace.integrations.openai.unwrap_openai`` and at shutdown."""
        from dunetrace.integrations.openai import wrap_openai

        return wrap_openai(client, self)

    def wrap_anthropic(self, client: C) -> C:
        """Report the calls of an ``Anthropic`` / ``AsyncAnthropic`` client
        made inside a run; returns the same client. Undone by
        ``dunetrace.integrations.anthropic.unwrap_anthropic`` and at shutdown."""
        from dunetrace.integrations.anthropic import wrap_anthropic

        return wrap_anthropic(client, self)

    # -- deploys --------------------------------------------------------------

    def mark_deploy(self, agent_id: str, version: str, **meta: Any) -> None:
        """Tell Dunetrace a new version of an agent is live. Fire-and-forget:
        sent by the background thread; never raises, never blocks."""
        with capture_internal_errors("mark_deploy"):
            if not (isinstance(agent_id, str) and agent_id and isinstance(version, str) and version):
                warn_once(
                    "deploy-args",
                    "dunetrace: mark_deploy(agent_id, version) needs two non-empty strings; got %r, %r",
                    agent_id,
                    version,
                )
                return
            if self._http is None:
                return
            self._buffer.put_deploy(
                {"api_key": self.options.api_key, "agent_id": agent_id, "version": version, "meta": meta}
            )

    # -- delivery -------------------------------------------------------------

    def _filter(self, event: dict[str, Any]) -> bool:
        """Run the ``dunetrace_event`` plugins; False drops the event."""
        results = self.plugins.hook.dunetrace_event(event=event)
        if any(result is False for result in results):  # identity: a result's __eq__ may raise
            self._buffer.count_drop("dropped_by_plugin")
            return False
        payload = event.get("payload")
        if (
            not isinstance(payload, dict)
            or any(not isinstance(event.get(key), str) or not event.get(key) for key in _REQUIRED)
            or not isinstance(event.get("step_index"), int)
            or event["step_index"] < 0
        ):
            warn_once(
                "plugin-broke-event",
                "dunetrace: a dunetrace_event plugin left an event outside the contract "
                "(ids, step_index or payload); such events are dropped",
            )
            self._buffer.count_drop("invalid_after_plugin")
            return False
        return True

    def stats(self) -> dict[str, Any]:
        """Delivery counters: ``queued``, ``sent``, ``batches_sent``,
        ``retries``, and ``dropped`` by reason (``queue_full``,
        ``unauthorized``, ``shutdown``, ...)."""
        return self._buffer.stats()

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait up to ``timeout`` seconds for queued events to be delivered.
        True when none are left."""
        with capture_internal_errors("flush"):
            deadline = time.monotonic() + timeout
            self._flush_plugins(timeout)
            return self._buffer.flush(max(0.0, deadline - time.monotonic()))
        return False

    def _plugins_changed(self) -> None:
        if self.plugins.wants_drain:  # its deferred work is done on the drain thread
            self._buffer.start()
        self._buffer.refresh_room()  # a dunetrace_event plugin closes the fast path

    def _drain_plugins(self) -> None:
        if self.plugins.wants_drain:
            self.plugins.hook.dunetrace_drain(client=self)

    def _flush_plugins(self, timeout: float) -> None:
        if self.plugins.hook.dunetrace_flush.get_hookimpls():
            self.plugins.hook.dunetrace_flush(client=self, timeout=timeout)

    def shutdown(self, timeout: float = 5.0) -> bool:
        """End every run still open (``run.completed`` with ``exit_reason``
        ``abandoned``), deliver what is queued (at most ``timeout`` seconds),
        and stop. Safe to call twice. True when every event was delivered."""
        report = self._close(timeout)
        if report is not None:
            logger.warning("%s (after %.1fs)", report, timeout)
        return self._delivered_all

    def _close(self, timeout: float) -> str | None:
        """shutdown() and the end of the process: returns the report of what
        was not delivered, or None."""
        with self._shutdown_lock:
            if self._shut:
                return None
            self._shut = True
        self._delivered_all = False
        with capture_internal_errors("shutdown"):
            deadline = time.monotonic() + timeout
            self._flush_plugins(timeout)
            # Integrations that keep tables of open runs end theirs first, in
            # their own way; the buffer still takes the events.
            self.plugins.hook.dunetrace_shutdown(client=self)
            self._end_open_runs()
            self._delivered_all = self._buffer.close(max(0.0, deadline - time.monotonic()))
            if self._http is not None:
                self._http.close()
        lifecycle.forget(self)
        with capture_internal_errors("shutdown report"):
            return lifecycle.exit_report(self._buffer.final_counts(), self.options.endpoint)
        return None

    def _run_started(self, run: Run) -> None:
        key = id(run)
        runs = self._open_runs

        def gone(ref: weakref.ref[Run], key: int = key) -> None:
            if runs.get(key) is ref:
                runs.pop(key, None)

        runs[key] = weakref.ref(run, gone)

    def _run_finished(self, run: Run) -> None:
        self._open_runs.pop(id(run), None)

    def _end_open_runs(self) -> None:
        # Newest first: a child run ends before its parent.
        for ref in reversed(list(self._open_runs.copy().values())):
            run = ref()
            if run is not None and not run.finished:
                try:
                    run.finish(exit_reason="abandoned")
                except Exception as exc:
                    # An exception meant for the agent (a callback's, on a
                    # signal the run's end made fire) has no agent to reach
                    # here: shutdown goes on and never raises.
                    warn_once(
                        f"shutdown-finish:{type(exc).__name__}",
                        "dunetrace: ending run %s at shutdown raised %r; the other runs are ended all the same",
                        run.run_id,
                        exc,
                    )

    def _after_fork_in_child(self) -> None:
        # The parent's runs are the parent's to end; its threads' locks may
        # have been held at the fork.
        self._open_runs = {}
        self._shutdown_lock = threading.RLock()
        if self._http is not None:
            self._http.after_fork_in_child()

    def __enter__(self) -> Dunetrace:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()
