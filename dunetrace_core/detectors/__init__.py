"""The detector library: how an agent run goes wrong, judged one event at a
time (imported as ``dunetrace.detectors``).

Pure and framework-free: no I/O, no threads, no clock of its own. The same
code judges a run in the agent's process while it runs (:class:`LiveDetectors`,
the watcher every client registers unless ``Dunetrace(detectors=False)``)
and at the collector over the stored run, with the same thresholds, so a run
gets the same verdict in both places::

    from dunetrace.detectors import DetectorSettings, RunJudge

    settings = DetectorSettings.from_mapping({"default": {"tool_loop": {"threshold": 4}}})
    judge = RunJudge(settings.for_agent("my-agent"))
    for event in events:
        for name in judge.observe(event["event_type"], event["step_index"], event["payload"],
                                  event["timestamp"]):
            print(judge.finding(name))

:data:`DETECTORS` is the table: name, severity, thresholds, where it runs.
"""

from __future__ import annotations

from ._evidence import Finding
from ._judge import ANSWERED_EXIT_REASONS, RunJudge
from ._live import LiveDetectors
from ._settings import DetectorSettings
from ._table import DETECTORS, SEVERITIES, DetectorInfo, by_name, severity_rank

__all__ = [
    "ANSWERED_EXIT_REASONS",
    "DETECTORS",
    "DetectorInfo",
    "DetectorSettings",
    "Finding",
    "LiveDetectors",
    "RunJudge",
    "SEVERITIES",
    "by_name",
    "severity_rank",
]
