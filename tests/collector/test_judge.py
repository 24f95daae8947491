"""The judge keeps out of the ingest requests' way: it judges a run in a
pause between requests, or once the run has waited ``judge_max_delay``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from dunetrace.collector.judge import IngestActivity, Judge
from dunetrace.collector.settings import Settings
from dunetrace.collector.store import Store

from .wire import tool_loop_run


def judge_for(tmp_path: Path, max_delay: float) -> tuple[Store, Judge, IngestActivity]:
    settings = Settings(db_path=str(tmp_path / "j.db"), judge_max_delay=max_delay)
    store = Store(settings.db_path)
    activity = IngestActivity()
    judge = Judge(store, settings, activity=activity)
    judge.start()
    return store, judge, activity


def status(store: Store, run_id: str) -> str:
    run = store.run(run_id)
    assert run is not None
    return str(run["status"])


def test_a_run_is_judged_in_the_pause_after_a_request(tmp_path: Path) -> None:
    store, judge, activity = judge_for(tmp_path, max_delay=30.0)
    try:
        activity.begin()  # a request is being handled
        _, ended = store.ingest(tool_loop_run("r1"), "b1")
        judge.submit(ended)
        assert not judge.wait_idle(0.3)
        assert status(store, "r1") == "ended"
        activity.end()  # its answer is sent: the pause
        assert judge.wait_idle(5)
        assert status(store, "r1") == "judged"
        assert store.signals(run_id="r1")[1] == 1
    finally:
        judge.stop()
        store.close()


def test_a_stream_of_requests_delays_judging_by_at_most_the_max_delay(tmp_path: Path) -> None:
    store, judge, activity = judge_for(tmp_path, max_delay=0.5)
    try:
        activity.begin()  # requests in progress the whole time
        started = time.monotonic()
        _, ended = store.ingest(tool_loop_run("r1"), "b1")
        judge.submit(ended)
        assert judge.wait_idle(5)
        waited = time.monotonic() - started
        assert 0.4 <= waited < 3.0, waited
        assert status(store, "r1") == "judged"
        activity.end()
    finally:
        judge.stop()
        store.close()


def test_overlapping_requests_keep_the_judge_waiting_until_the_last_ends(tmp_path: Path) -> None:
    activity = IngestActivity()
    activity.begin()
    activity.begin()
    activity.end()
    assert not activity.idle.is_set()
    activity.end()
    assert activity.idle.is_set()


def test_a_short_pause_between_requests_is_not_enough(tmp_path: Path) -> None:
    """A pause shorter than judge_quiet is a client encoding its next
    batch: the judge waits for a longer one."""
    settings = Settings(db_path=str(tmp_path / "j.db"), judge_quiet=1.0, judge_max_delay=30.0)
    store = Store(settings.db_path)
    activity = IngestActivity()
    judge = Judge(store, settings, activity=activity)
    judge.start()
    try:
        _, ended = store.ingest(tool_loop_run("r1"), "b1")
        activity.begin()
        judge.submit(ended)
        for _ in range(5):  # requests with 50 ms pauses between them
            activity.end()
            time.sleep(0.05)
            activity.begin()
            time.sleep(0.05)
        assert status(store, "r1") == "ended"
        activity.end()
        assert judge.wait_idle(5)
        assert status(store, "r1") == "judged"
    finally:
        judge.stop()
        store.close()


def test_the_longest_delay_is_set_by_flag_or_environment(monkeypatch: Any) -> None:
    from dunetrace.cli import _parser

    args = _parser().parse_args(["serve", "--judge-max-delay", "0.5"])
    assert args.judge_max_delay == 0.5
    assert Settings.from_env(db_path="x.db", judge_max_delay=args.judge_max_delay).judge_max_delay == 0.5
    monkeypatch.setenv("DUNETRACE_JUDGE_MAX_DELAY", "7")
    assert Settings.from_env(db_path="x.db").judge_max_delay == 7.0
    monkeypatch.setenv("DUNETRACE_JUDGE_MAX_DELAY", "-1")
    with pytest.raises(ValueError, match="judge_max_delay"):
        Settings.from_env(db_path="x.db")


def test_an_agents_prior_step_counts_are_kept_as_its_runs_are_judged(tmp_path: Path) -> None:
    """STEP_COUNT_INFLATION compares a run with the agent's earlier judged
    runs: the judge keeps their counts in memory after reading them once,
    and they must stay what the file says."""
    store, judge, _activity = judge_for(tmp_path, max_delay=0.0)
    try:
        for i in range(3):  # judged before this judge started (a restart)
            store.ingest(tool_loop_run(f"old-{i}", calls=2), f"old-{i}")
            store.save_judgement(f"old-{i}", [])
        for i in range(10):
            _, ended = store.ingest(tool_loop_run(f"r{i}", calls=2 + i % 3), f"b{i}")
            judge.submit(ended)
            assert judge.wait_idle(5)
        assert sorted(judge._prior_counts("agent-a", "none")) == sorted(store.prior_step_counts("agent-a", "none"))
        assert len(store.prior_step_counts("agent-a", "none")) == 13
        _, ended = store.ingest(tool_loop_run("long", calls=40), "long")
        judge.submit(ended)
        assert judge.wait_idle(5)
        assert "STEP_COUNT_INFLATION" in {s["detector"] for s in store.signals(run_id="long")[0]}
        assert next(iter(judge._prior_counts("agent-a", "none"))) == 40
    finally:
        judge.stop()
        store.close()
