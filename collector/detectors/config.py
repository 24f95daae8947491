"""Detector thresholds: the built-in defaults, tuned by a ``detectors.yml``.

The file has the same form as the Dunetrace backend's, so one file serves
both. A ``default`` section tunes every agent; a section per agent inherits
from it, key by key::

    default:                    # every agent
      tool_loop:                # detector name, any case: tool_loop or TOOL_LOOP
        threshold: 3            # threshold keys (below); omitted keys keep their value
        window: 5
      empty_llm_response:
        enabled: false          # any detector can be turned off

    agents:                     # per-agent sections, by agent_id
      web-research:
        TOOL_LOOP:
          threshold: 5          # this agent only; window stays 5

    support-bot:                # the backend's form: a top-level section named
      context_bloat:            # after the agent works the same as one under
        growth_factor: 4.0      # `agents:` (use `agents:` for an agent called
                                # "default" or "agents")

An agent's value for a key is its own section's, else ``default``'s, else the
built-in default (the contract's table). The keys, with their defaults:

======================= ==========================================================
detector                keys
======================= ==========================================================
TOOL_LOOP               threshold 3 (alias min_repeats), window 5
TOOL_THRASHING          window 6
RETRY_STORM             threshold 3
CASCADING_TOOL_FAILURE  threshold 3
LLM_TRUNCATION_LOOP     threshold 2
EMPTY_LLM_RESPONSE      (none)
CONTEXT_BLOAT           min_calls 3, growth_factor 3.0, min_last_tokens 2000
SLOW_STEP               tool_seconds 15, llm_seconds 30, high_factor 5.0
TOOL_AVOIDANCE          min_llm_calls 2
GOAL_ABANDONMENT        stall_steps 4
RAG_EMPTY_RETRIEVAL     min_score 0.3, min_results 1
STEP_COUNT_INFLATION    inflation_factor 2.0, min_runs 10
FIRST_STEP_FAILURE      max_step 2
REASONING_STALL         min_llm_calls 5, ratio_threshold 4.0
PROMPT_INJECTION_SIGNAL min_matches 1
======================= ==========================================================

Every detector also takes ``enabled`` (true/false). The backend's
``inflation_factor`` under ``slow_step``, ``context_bloat`` and
``reasoning_stall`` (its baseline-relative modes) is accepted and not used
here. A section for a detector this collector does not have is skipped with a
warning (the backend has more); a misspelt key, a wrong type or a negative
number is an error naming the file, section and key, so a typo never silently
leaves a default in place.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ._registry import DETECTORS, by_name
from ._types import Detector

__all__ = ["DetectorConfig", "load_config"]

logger = logging.getLogger("dunetrace.collector.detectors")

#: Integer keys that may be 0; every other integer key must be at least 1.
_ZERO_ALLOWED = frozenset({"max_step"})


def _check_value(detector: Detector, key: str, value: Any, where: str) -> Any:
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
            logger.warning("dunetrace collector: %s", message)
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


class DetectorConfig:
    """Thresholds per detector, for every agent. Build it with
    :func:`load_config` or :meth:`from_mapping`; ``DetectorConfig()`` is the
    built-in defaults."""

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
    def from_mapping(cls, data: Mapping[str, Any] | None, *, source: str = "detectors.yml") -> DetectorConfig:
        """Settings in the file's form (the parsed YAML)."""
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
        """Every detector's settings for ``agent_id`` (``enabled`` included)."""
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
        return f"<DetectorConfig from {self.source or 'built-in defaults'}, agents={self.agents}>"


def load_config(path: str | None) -> DetectorConfig:
    """Read a ``detectors.yml``; ``None`` gives the built-in defaults.

    Raises FileNotFoundError for a missing file, and ValueError for a file
    that is not valid YAML or has a bad section, key or value."""
    if path is None:
        return DetectorConfig()
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is in the collector extra
        raise ImportError(
            "reading detectors.yml needs PyYAML: pip install 'dunetrace[collector]'"
        ) from None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    return DetectorConfig.from_mapping(data, source=str(path))
