"""Detector settings: the built-in defaults, tuned by a plain dict in the
form of the collector's ``detectors.yml`` (the collector reads the YAML; the
core takes the dict, so it needs no YAML parser)::

    {
        "default": {"tool_loop": {"threshold": 3, "window": 5},
                    "empty_llm_response": {"enabled": False}},
        "agents": {"web-research": {"TOOL_LOOP": {"threshold": 5}}},
    }

A section per agent inherits from ``default`` key by key; an agent's value is
its own section's, else ``default``'s, else the built-in default. A top-level
section named after an agent (the Dunetrace backend's form) works like one
under ``agents``. Every detector also takes ``enabled``. A misspelt key, a
wrong type or a negative number is a ValueError naming the section and key;
a section for a detector not known here is skipped with a warning (the
backend has more).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ._table import DETECTORS, DetectorInfo, by_name

__all__ = ["DetectorSettings"]

logger = logging.getLogger("dunetrace.detectors")

#: Integer keys that may be 0; every other integer key must be at least 1.
_ZERO_ALLOWED = frozenset({"max_step", "max_unanswered"})


def _check_value(detector: DetectorInfo, key: str, value: Any, where: str) -> Any:
    if key == "enabled":
        if not isinstance(value, bool):
            raise ValueError(f"{where}: 'enabled' must be true or false, got {value!r}")
        return value
    default = detector.defaults[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ValueError(f"{where}: {key} must be a number, got {value!r}")
    if isinstance(default, int):
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(f"{where}: {key} must be a whole number, got {value!r}")
        value = int(value)
        low = 0 if key in _ZERO_ALLOWED else 1
        if value < low:
            raise ValueError(f"{where}: {key} must be at least {low}, got {value!r}")
        return value
    if value < 0:
        raise ValueError(f"{where}: {key} must not be negative, got {value!r}")
    return float(value)


def _read_section(section: Any, where: str, warnings: list[str]) -> dict[str, dict[str, Any]]:
    """A mapping of detector name -> settings, checked; keyed by NAME."""
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ValueError(f"{where} must be a mapping of detector names to settings, got {type(section).__name__}")
    out: dict[str, dict[str, Any]] = {}
    for raw_name, settings in section.items():
        detector = by_name(str(raw_name))
        if detector is None:
            message = f"{where}: no detector called {raw_name!r} here; section skipped"
            warnings.append(message)
            logger.warning("dunetrace: %s", message)
            continue
        place = f"{where}.{raw_name}"
        if settings is None:
            settings = {}
        if not isinstance(settings, Mapping):
            raise ValueError(f"{place} must be a mapping of threshold keys to values, got {settings!r}")
        checked: dict[str, Any] = {}
        for raw_key, value in settings.items():
            key = detector.aliases.get(str(raw_key), str(raw_key))
            if key in detector.ignored:
                continue
            if key != "enabled" and key not in detector.defaults:
                known = sorted([*detector.defaults, *detector.aliases, "enabled"])
                raise ValueError(f"{place}: unknown key {raw_key!r}; {detector.name} takes {', '.join(known)}")
            checked[key] = _check_value(detector, key, value, f"{place}.{raw_key}")
        out.setdefault(detector.name, {}).update(checked)
    return out


class DetectorSettings:
    """Thresholds per detector, for every agent. ``DetectorSettings()`` is
    the built-in defaults; :meth:`from_mapping` reads the dict form."""

    def __init__(
        self,
        default: Mapping[str, Mapping[str, Any]] | None = None,
        agents: Mapping[str, Mapping[str, Mapping[str, Any]]] | None = None,
        *,
        source: str | None = None,
        warnings: list[str] | None = None,
    ) -> None:
        # Both are already checked and keyed by detector NAME.
        self._default = {name: dict(s) for name, s in (default or {}).items()}
        self._agents = {agent: {n: dict(s) for n, s in sections.items()} for agent, sections in (agents or {}).items()}
        #: Where the settings came from (a file path), for messages.
        self.source = source
        #: Problems that were skipped rather than raised (unknown detectors).
        self.warnings = list(warnings or [])
        self._resolved: dict[str | None, dict[str, dict[str, Any]]] = {}

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any] | None, *, source: str = "detectors") -> DetectorSettings:
        """Settings in the ``detectors.yml`` form (its parsed YAML, or a dict
        written in code)."""
        if data is None:
            return cls(source=source)
        if not isinstance(data, Mapping):
            raise ValueError(f"{source}: the top level must be a mapping with a 'default' section")
        warnings: list[str] = []
        default = _read_section(data.get("default"), f"{source}: default", warnings)
        agents: dict[str, dict[str, dict[str, Any]]] = {}
        listed = data.get("agents")
        if listed is not None and not isinstance(listed, Mapping):
            raise ValueError(f"{source}: 'agents' must be a mapping of agent ids to sections")
        sections = [(k, v) for k, v in data.items() if k not in ("default", "agents")]
        sections += list((listed or {}).items())
        for agent, section in sections:
            read = _read_section(section, f"{source}: {agent}", warnings)
            target = agents.setdefault(str(agent), {})
            for name, settings in read.items():
                target.setdefault(name, {}).update(settings)
        return cls(default, agents, source=source, warnings=warnings)

    @property
    def agents(self) -> list[str]:
        """The agents with a section of their own."""
        return sorted(self._agents)

    def for_agent(self, agent_id: str | None = None) -> dict[str, dict[str, Any]]:
        """Every detector's settings for ``agent_id`` (``enabled`` included).
        Shared and cached: do not change it."""
        key = agent_id if agent_id in self._agents else None
        resolved = self._resolved.get(key)
        if resolved is None:
            own = self._agents.get(key, {}) if key is not None else {}
            resolved = {
                d.name: {"enabled": True, **d.defaults, **self._default.get(d.name, {}), **own.get(d.name, {})}
                for d in DETECTORS
            }
            self._resolved[key] = resolved
        return resolved

    def params(self, detector: str, agent_id: str | None = None) -> dict[str, Any]:
        """One detector's settings for ``agent_id`` (a copy)."""
        found = by_name(detector)
        if found is None:
            raise KeyError(f"no detector called {detector!r}")
        return dict(self.for_agent(agent_id)[found.name])

    def enabled(self, detector: str, agent_id: str | None = None) -> bool:
        return bool(self.params(detector, agent_id)["enabled"])

    def to_dict(self) -> dict[str, Any]:
        """The effective settings: ``default`` and each configured agent."""
        return {
            "default": self.for_agent(None),
            "agents": {agent: self.for_agent(agent) for agent in self.agents},
        }

    def __repr__(self) -> str:
        return f"<{type(self).__name__} from {self.source or 'built-in defaults'}, agents={self.agents}>"
