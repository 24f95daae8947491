"""Failure detectors for the local collector.

The detectors are the core's (:mod:`dunetrace.detectors`), the same code the
SDK runs in the agent's process, so a run gets the same verdict in both
places. This package adds what only the collector has: STEP_COUNT_INFLATION
(it needs the agent's earlier runs), the live signals the SDK sent, and a
plain-language explanation per detector (``tool_loop.py``, ...: what
happened, why it matters, what to try). :func:`judge_run` returns a
:class:`Signal` per detector that fired, with its evidence (metadata only).

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

from ._judge import judge_run, judge_view, live_signals_in_rows
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
    "live_signals_in_rows",
    "load_config",
    "read_rows",
    "severity_rank",
]
