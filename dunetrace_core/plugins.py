"""The plugin host: one pluggy manager per client.

Hooks are called through pluggy's own hook calling, so third-party
implementations marked ``wrapper=True``, ``hookwrapper=True``, ``tryfirst``
or ``trylast``, and hooks specified ``firstresult``, behave as pluggy
documents. One guard surrounds each whole call (pluggy's public
``add_hookcall_monitoring``): an exception that leaves the call (no wrapper
handled it) is logged once, naming the plugin it came from, and the call
answers an empty result instead; it never reaches the agent. What that means
for each hook is written in ``hookspecs.py``.

Third-party plugins come from the ``dunetrace`` entry-point group, looked up
lazily once per process, when the first client is built.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs
from .export import ExportResult
from .log import warn_once

__all__ = ["ENTRY_POINT_GROUP", "PluginHost", "hookimpl"]

ENTRY_POINT_GROUP = "dunetrace"

hookimpl = pluggy.HookimplMarker("dunetrace")

_entry_plugins: list[tuple[str, Any]] | None = None
_entry_lock = threading.Lock()


def _load_entry_point_plugins() -> list[tuple[str, Any]]:
    global _entry_plugins
    with _entry_lock:
        if _entry_plugins is None:
            loaded: list[tuple[str, Any]] = []
            for ep in entry_points(group=ENTRY_POINT_GROUP):
                try:
                    loaded.append((ep.name, ep.load()))
                except Exception as exc:
                    warn_once(
                        f"plugin-load:{ep.name}",
                        "dunetrace: could not load plugin %r (%s): %r; continuing without it",
                        ep.name,
                        ep.value,
                        exc,
                    )
            _entry_plugins = loaded
        return _entry_plugins


def _culprit(error: BaseException, impls: Sequence[Any]) -> str:
    """The plugin an exception came from: the innermost frame of its
    traceback that is one of the call's hook implementations."""
    codes = {getattr(impl.function, "__code__", None): impl for impl in impls}
    found = None
    tb = error.__traceback__
    while tb is not None:
        impl = codes.get(tb.tb_frame.f_code)
        if impl is not None:
            found = impl
        tb = tb.tb_next
    if found is None:
        return "unknown plugin"
    return str(getattr(found, "plugin_name", None) or found.plugin)


def _after_raise(hook_name: str, kwargs: Mapping[str, object], firstresult: bool) -> object:
    """What a call answers when a plugin raised out of it."""
    if hook_name == "dunetrace_export":
        # The built-in exporters run first (tryfirst): a batch one of them
        # delivered is delivered; else it is given up and counted.
        batch = kwargs.get("batch")
        if getattr(batch, "delivered_by", None):
            return [ExportResult.ok()]
        return [ExportResult.drop("export_plugin_error")]
    return None if firstresult else []


class PluginHost(pluggy.PluginManager):
    """A pluggy manager whose hook calls never raise into the agent, and
    which knows, without a call, whether anyone implements the per-event
    hook."""

    def __init__(self) -> None:
        super().__init__("dunetrace")
        self.add_hookspecs(hookspecs)
        self.add_hookcall_monitoring(_before_call, self._after_call)
        #: True when some plugin implements ``dunetrace_event`` (checked per event).
        self.wants_events = False
        self.wants_runs = False
        #: True when some plugin implements ``dunetrace_drain``.
        self.wants_drain = False
        #: Called after every register / unregister (the client starts its
        #: drain thread for a ``dunetrace_drain`` plugin).
        self.on_change: Callable[[], None] | None = None

    def _after_call(self, outcome: Any, hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, object]) -> None:
        error = outcome.exception
        if error is None or not isinstance(error, Exception) or getattr(error, "dunetrace_passthrough", False):
            return  # KeyboardInterrupt, SystemExit and PolicyViolation go on as raised
        try:
            plugin = _culprit(error, impls)
            warn_once(
                f"plugin-raise:{plugin}:{hook_name}:{type(error).__name__}",
                "dunetrace: plugin %r raised %s in %s; that call's remaining plugins were skipped "
                "(the agent is unaffected)",
                plugin,
                type(error).__name__,
                hook_name,
                level=logging.ERROR,
            )
            caller = getattr(self.hook, hook_name, None)
            spec = getattr(caller, "spec", None)
            firstresult = bool(spec is not None and spec.opts.get("firstresult"))
        except Exception:
            firstresult = False
        outcome.force_result(_after_raise(hook_name, kwargs, firstresult))

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        result = super().register(plugin, name)
        self._refresh()
        return result

    def unregister(self, plugin: Any = None, name: str | None = None) -> Any:
        result = super().unregister(plugin, name)
        self._refresh()
        return result

    def _refresh(self) -> None:
        hook = self.hook
        self.wants_events = bool(hook.dunetrace_event.get_hookimpls())
        self.wants_runs = bool(
            hook.dunetrace_run_started.get_hookimpls() or hook.dunetrace_run_finished.get_hookimpls()
        )
        self.wants_drain = bool(hook.dunetrace_drain.get_hookimpls())
        if self.on_change is not None:
            self.on_change()

    def load_entry_points(self) -> None:
        for name, plugin in _load_entry_point_plugins():
            if self.get_plugin(name) is None and not self.is_registered(plugin):
                try:
                    self.register(plugin, name=name)
                except Exception as exc:  # a plugin whose hooks do not match the specs
                    warn_once(
                        f"plugin-register:{name}",
                        "dunetrace: plugin %r could not be registered: %r",
                        name,
                        exc,
                        level=logging.ERROR,
                    )


def _before_call(hook_name: str, impls: Sequence[Any], kwargs: Mapping[str, object]) -> None:
    return None
