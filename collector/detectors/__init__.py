"""Failure detectors for the local collector.

Each detector is a small pure function over one run's events, in its own
module (``tool_loop.py``, ...), registered in the table in ``_registry.py``.
:func:`judge_run` runs the enabled ones and returns a :class:`Signal` per
detector that fired, with its evidence (metadata only) and a plain-language
explanation: what happened, why it matters, what to try.

Thresholds default to the wire contract's table and are tuned by a
``detectors.yml``; see :mod:`dunetrace.collector.detectors.config` for its
form (and ``detectors.example.yml`` beside this file)::

    default:
      tool_loop: {threshold: 3, window: 5}
    agents:
      my-agent:
        TOOL_LOOP: {min_repeats: 4}
"""

from __future__ import annotations

from ._judge import judge_run, judge_view
from ._registry import DETECTORS, by_name
from ._run import read_rows
from ._types import SEVERITIES, Detector, Finding, Signal, severity_rank
from .config import DetectorConfig, load_config

__all__ = [
    "DETECTORS",
    "Detector",
    "DetectorConfig",
    "Finding",
    "SEVERITIES",
    "Signal",
    "by_name",
    "judge_run",
    "judge_view",
    "load_config",
    "read_rows",
    "severity_rank",
]
