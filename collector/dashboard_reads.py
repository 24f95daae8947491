"""What the dashboard draws, computed from the store's own reads (``runs``,
``signals``, ``deploys``, ``run``, ``run_events``), so it works the same on
every store: an agent's chart over time, a run with its child runs, and
signals of a time window.

The reads walk the store's newest-first pages and stop at the window's
start; ``SCAN_LIMIT`` bounds the walk, and a chart whose window held more
says so (``truncated``) rather than taking unbounded time. A page that polls
asks the same again and again: ``ReadCache`` answers from memory while
nothing new reached the store.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .store import Store

__all__ = ["RANGES", "SCAN_LIMIT", "ReadCache", "run_tree", "signals_since", "timeline"]

#: Range name -> (seconds shown, seconds per bucket): 60, 48, 56 and 60 buckets.
RANGES: dict[str, tuple[int, int]] = {
    "1h": (3600, 60),
    "24h": (86400, 1800),
    "7d": (7 * 86400, 3 * 3600),
    "30d": (30 * 86400, 12 * 3600),
}
SCAN_LIMIT = 20_000
_PAGE = 500
#: Child runs shown under a run (a crew of crews stays readable).
MAX_CHILDREN = 100


def _scan(read: Any, stop: Any) -> tuple[list[dict[str, Any]], str]:
    """Newest-first pages of ``read(limit, offset)`` until ``stop(item)``.
    The second value says why the walk ended: "stopped" (at an item older
    than wanted), "exhausted" (no older item) or "truncated" (SCAN_LIMIT)."""
    found: list[dict[str, Any]] = []
    offset = 0
    while offset < SCAN_LIMIT:
        items, total = read(_PAGE, offset)
        for item in items:
            if stop(item):
                return found, "stopped"
            found.append(item)
        offset += len(items)
        if not items or offset >= total:
            return found, "exhausted"
    return found, "truncated"


def timeline(store: Store, agent_id: str | None, range_name: str, now: float) -> dict[str, Any]:
    """Runs, error rate and each detector's rate per bucket of the range
    ending now, with the deploys and version changes inside it. Rates are
    percent of the bucket's runs (null where a bucket has no run); a run
    counts in the bucket where it started."""
    span, step = RANGES[range_name]
    end = (math.floor(now / step) + 1) * step
    start = end - span
    count = span // step
    runs, runs_end = _scan(
        lambda limit, offset: store.runs(agent_id, None, limit, offset), lambda r: r["last_seen"] < start
    )
    in_window = sorted((r for r in runs if start <= r["first_ts"] < end), key=lambda r: (r["first_ts"], r["run_id"]))
    per_bucket = [0] * count
    errored = [0] * count
    bucket_of: dict[str, int] = {}
    for r in in_window:
        i = int((r["first_ts"] - start) // step)
        bucket_of[r["run_id"]] = i
        per_bucket[i] += 1
        if r["end_type"] == "run.errored":
            errored[i] += 1
    # A signal is judged after its run started, so none of the window's runs
    # has a signal older than the window.
    signals, signals_end = _scan(
        lambda limit, offset: store.signals(agent_id=agent_id, limit=limit, offset=offset),
        lambda s: s["created_at"] < start,
    )
    flagged: dict[str, list[set[str]]] = {}
    for s in signals:
        i = bucket_of.get(s["run_id"])
        if i is not None:
            flagged.setdefault(s["detector"], [set() for _ in range(count)])[i].add(s["run_id"])

    def rate(hits: list[int]) -> list[float | None]:
        return [round(100.0 * h / n, 2) if n else None for h, n in zip(hits, per_bucket, strict=False)]

    markers = [
        {"kind": "deploy", "agent_id": d["agent_id"], "version": d["version"], "meta": d["meta"], "at": d["at"]}
        for d in store.deploys(agent_id, _PAGE, 0)[0]
        if start <= d["at"] < end
    ]
    # A version change is a marker too; when no run is older than the
    # window, the agent's first version in it is its first ever (on one
    # agent's chart: on the chart of all agents these would crowd it).
    # Runs older than the window that the walk met (their events came late)
    # say which version came before.
    first_ever = runs_end == "exhausted" and agent_id is not None
    last_version: dict[str, str] = {}
    for r in sorted(runs, key=lambda r: (r["first_ts"], r["run_id"])):
        if r["first_ts"] >= end:
            break
        before = last_version.get(r["agent_id"])
        in_it = r["first_ts"] >= start
        if in_it and before != r["agent_version"] and (before is not None or first_ever):
            meta = {"previous": before, "run_id": r["run_id"]} if before else {"first_run": r["run_id"]}
            markers.append(
                {
                    "kind": "version",
                    "agent_id": r["agent_id"],
                    "version": r["agent_version"],
                    "meta": meta,
                    "at": r["first_ts"],
                }
            )
        last_version[r["agent_id"]] = r["agent_version"]
    markers.sort(key=lambda m: m["at"])
    return {
        "agent_id": agent_id,
        "range": range_name,
        "start": start,
        "end": end,
        "bucket_seconds": step,
        "buckets": [start + i * step for i in range(count)],
        "runs": per_bucket,
        "errored": errored,
        "error_rate": rate(errored),
        "detectors": {name: rate([len(b) for b in hits]) for name, hits in sorted(flagged.items())},
        "markers": markers,
        "total_runs": len(in_window),
        "truncated": "truncated" in (runs_end, signals_end),
    }


def run_tree(store: Store, run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's descendants (child runs, their children...) with their
    events and signals, parents before children. Child runs end after their
    parent started, so the walk stops at runs last seen before that."""
    runs, _ = _scan(
        lambda limit, offset: store.runs(None, None, limit, offset), lambda r: r["last_seen"] < run["first_ts"]
    )
    children: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        if r["parent_run_id"]:
            children.setdefault(r["parent_run_id"], []).append(r)
    found: list[dict[str, Any]] = []
    waiting = [run["run_id"]]
    seen = {run["run_id"]}
    while waiting and len(found) < MAX_CHILDREN:
        parent = waiting.pop(0)
        for child in sorted(children.get(parent, []), key=lambda r: (r["first_ts"], r["run_id"])):
            if child["run_id"] in seen or len(found) >= MAX_CHILDREN:
                continue
            seen.add(child["run_id"])
            waiting.append(child["run_id"])
            signals, _ = store.signals(run_id=child["run_id"], limit=_PAGE)
            signals.reverse()
            found.append({"run": child, "events": store.run_events(child["run_id"]), "signals": signals})
    return found


def signals_since(
    store: Store, since: float, filters: dict[str, Any], limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """A page of the signals found at ``since`` or later (newest first),
    and how many there are."""
    found, _ = _scan(
        lambda page, at: store.signals(**filters, limit=page, offset=at), lambda s: s["created_at"] < since
    )
    return found[offset : offset + limit], len(found)


class ReadCache:
    """The last answers of the walks above, kept while the store holds the
    same: the same number of runs, signals and deploys, and the same newest
    run, seen at the same time in the same state (a few indexed reads)."""

    def __init__(self, store: Store, size: int = 32) -> None:
        self._store = store
        self._size = size
        self._answers: OrderedDict[Hashable, tuple[Hashable, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def _token(self) -> Hashable:
        newest, runs = self._store.runs(None, None, 1, 0)
        latest = tuple(newest[0][k] for k in ("run_id", "last_seen", "status", "event_count")) if newest else None
        signals = self._store.signals(limit=1)[1]
        deploys = self._store.deploys(None, 1, 0)[1]
        return (runs, latest, signals, deploys)

    def get(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        token = self._token()
        with self._lock:
            kept = self._answers.get(key)
            if kept is not None and kept[0] == token:
                self._answers.move_to_end(key)
                return kept[1]
        answer = compute()
        with self._lock:
            self._answers[key] = (token, answer)
            self._answers.move_to_end(key)
            while len(self._answers) > self._size:
                self._answers.popitem(last=False)
        return answer
