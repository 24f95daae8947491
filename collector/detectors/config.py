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
built-in default. Every detector's keys and defaults are in the README's
detector table (and :data:`dunetrace.detectors.DETECTORS`); the SDK takes the
same settings as a dict, ``Dunetrace(detectors={...})``.

Every detector also takes ``enabled`` (true/false). The backend's
``inflation_factor`` under ``slow_step``, ``context_bloat`` and
``reasoning_stall`` (its baseline-relative modes) is accepted and not used
here. A section for a detector this collector does not have is skipped with a
warning (the backend has more); a misspelt key, a wrong type or a negative
number is an error naming the file, section and key, so a typo never silently
leaves a default in place.
"""

from __future__ import annotations

from dunetrace.detectors import DetectorSettings

__all__ = ["DetectorConfig", "load_config"]


class DetectorConfig(DetectorSettings):
    """Thresholds per detector, for every agent: the core's
    :class:`dunetrace.detectors.DetectorSettings`, read from a
    ``detectors.yml`` by :func:`load_config`. ``DetectorConfig()`` is the
    built-in defaults."""


def load_config(path: str | None) -> DetectorConfig:
    """Read a ``detectors.yml``; ``None`` gives the built-in defaults.

    Raises FileNotFoundError for a missing file, and ValueError for a file
    that is not valid YAML or has a bad section, key or value."""
    if path is None:
        return DetectorConfig()
    try:
        import yaml
    except ImportError:  # pragma: no cover - pyyaml is in the collector extra
        raise ImportError("reading detectors.yml needs PyYAML: pip install 'dunetrace[collector]'") from None
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML: {exc}") from None
    return DetectorConfig.from_mapping(data, source=str(path))
