"""The plugin host: one pluggy manager per client.

Plugins that raise are isolated: each implementation is called on its own, so
one failing plugin is logged once and skipped while the others still run.
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
from pluggy._callers import _multicall

from . import hookspecs
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


def _plugin_label(impl: Any) -> str:
    return str(getattr(impl, "plugin_name", None) or impl)


def _isolated_hookexec(
    hook_name: str, methods: Sequence[Any], kwargs: Mapping[str, object], firstresult: bool
) -> object | list[object]:
    """pluggy's call loop, one implementation at a time, so one raising
    plugin cannot take the others (or the agent) down with it."""
    results: list[object] = []
    for impl in reversed(methods):  # pluggy calls the last registered first
        try:
            result = _multicall(hook_name, [impl], kwargs, firstresult)
        except Exception as exc:
            warn_once(
                f"plugin-raise:{_plugin_label(impl)}:{hook_name}",
                "dunetrace: plugin %r raised in %s and was skipped: %r",
                _plugin_label(impl),
                hook_name,
                exc,
                level=logging.ERROR,
            )
            continue
        if firstresult:
            if result is not None:
                return result
        else:
            results.extend(result)  # type: ignore[arg-type]
    return None if firstresult else results


class PluginHost(pluggy.PluginManager):
    """A pluggy manager that isolates plugin errors and knows, without a
    call, whether anyone implements the per-event hook."""

    def __init__(self) -> None:
        super().__init__("dunetrace")
        self.add_hookspecs(hookspecs)
        self._inner_hookexec = _isolated_hookexec
        #: True when some plugin implements ``dunetrace_event`` (checked per event).
        self.wants_events = False
        self.wants_runs = False
        #: True when some plugin implements ``dunetrace_drain``.
        self.wants_drain = False
        #: Called after every register / unregister (the client starts its
        #: drain thread for a ``dunetrace_drain`` plugin).
        self.on_change: Callable[[], None] | None = None

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
