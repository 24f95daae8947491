"""The bounded table of open runs (dunetrace.open_runs.OpenRuns): bounds by
count and age, each run handed back exactly once, safe under threads."""

from __future__ import annotations

import sys
import threading
from collections import OrderedDict

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from dunetrace.open_runs import OpenRuns


class _Clock:
    """Time that moves only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class _Run:
    """A stand-in for an integration's run state: compared by identity."""

    __slots__ = ("key", "serial")

    def __init__(self, key: int, serial: int) -> None:
        self.key = key
        self.serial = serial

    def __repr__(self) -> str:
        return f"_Run({self.key}, #{self.serial})"


def test_oldest_is_evicted_past_the_count_and_handed_back() -> None:
    table: OpenRuns[str, str] = OpenRuns(2)
    assert table.add("a", "run a") == []
    assert table.add("b", "run b") == []
    assert table.add("c", "run c") == ["run a"]
    assert "a" not in table and table.get("b") == "run b" and len(table) == 2
    assert table.evictions == 1 and table.expirations == 0
    assert table.drain() == ["run b", "run c"]
    assert len(table) == 0


def test_a_run_open_too_long_is_evicted_on_the_next_add_or_expire() -> None:
    clock = _Clock()
    table: OpenRuns[str, str] = OpenRuns(10, max_age=60, clock=clock)
    table.add("a", "run a")
    clock.now += 30
    table.add("b", "run b")
    clock.now += 31  # a is 61 s old, b 31 s
    assert table.add("c", "run c") == ["run a"]
    assert table.expirations == 1 and table.evictions == 0
    clock.now += 100
    assert table.expire() == ["run b", "run c"]
    assert len(table) == 0 and table.expirations == 3


def test_the_run_being_added_is_kept_whatever_the_bounds() -> None:
    clock = _Clock()
    table: OpenRuns[str, str] = OpenRuns(1, max_age=1, clock=clock)
    assert table.add("a", "run a") == []
    assert table.add("b", "run b") == ["run a"]
    assert table.get("b") == "run b"


def test_a_different_run_under_a_known_key_evicts_the_old_one() -> None:
    table: OpenRuns[str, object] = OpenRuns(5)
    first, second = object(), object()
    table.add("k", first)
    assert table.add("k", first) == []  # the same run again: kept, newest
    assert table.add("k", second) == [first]
    assert table.evictions == 1 and table.get("k") is second


def test_re_adding_makes_a_run_the_newest() -> None:
    table: OpenRuns[str, str] = OpenRuns(2)
    table.add("a", "run a")
    table.add("b", "run b")
    table.add("a", "run a")
    assert table.add("c", "run c") == ["run b"]


def test_pop_with_a_value_leaves_a_newer_run_under_the_same_key() -> None:
    table: OpenRuns[str, object] = OpenRuns(5)
    old, new = object(), object()
    table.add("k", old)
    table.add("k", new)
    assert table.pop("k", old) is None
    assert table.get("k") is new
    assert table.pop("k", new) is new
    assert table.pop("k") is None and table.get("k", "none") == "none"


@pytest.mark.parametrize("max_runs", [0, -1, 1.5, True, "10", None])
def test_a_bad_count_bound_is_refused_naming_it(max_runs: object) -> None:
    with pytest.raises(ValueError, match="max_runs"):
        OpenRuns(max_runs)  # type: ignore[arg-type]


@pytest.mark.parametrize("max_age", [0, -5, float("inf"), float("nan"), True, "60"])
def test_a_bad_age_bound_is_refused_naming_it(max_age: object) -> None:
    with pytest.raises(ValueError, match="max_age"):
        OpenRuns(10, max_age=max_age)  # type: ignore[arg-type]


@given(st.integers(min_value=1, max_value=10**9), st.one_of(st.none(), st.floats(min_value=1e-9, max_value=1e12)))
def test_any_sane_bounds_are_accepted(max_runs: int, max_age: float | None) -> None:
    table: OpenRuns[int, int] = OpenRuns(max_runs, max_age=max_age)
    assert table.max_runs == max_runs and table.max_age == max_age


class OpenRunsMachine(RuleBasedStateMachine):
    """Random adds, pops, time steps, expiries and drains against a plain
    model; every run added comes back exactly once (evicted, popped or
    drained), and the table never holds more than its bound."""

    @initialize(max_runs=st.integers(1, 6), max_age=st.one_of(st.none(), st.integers(1, 20)))
    def start(self, max_runs: int, max_age: int | None) -> None:
        self.clock = _Clock()
        self.table: OpenRuns[int, _Run] = OpenRuns(max_runs, max_age=max_age, clock=self.clock)
        self.max_runs = max_runs
        self.max_age = max_age
        self.model: OrderedDict[int, tuple[_Run, float]] = OrderedDict()
        self.serial = 0
        self.added: list[_Run] = []
        self.returned: list[_Run] = []
        self.counted = 0

    @rule(key=st.integers(0, 8))
    def add(self, key: int) -> None:
        self.serial += 1
        run = _Run(key, self.serial)
        self.added.append(run)
        replaced = self.model[key][0] if key in self.model else None
        evicted = self.table.add(key, run)
        if replaced is not None:
            assert evicted[0] is replaced
            self.model.pop(key)
            evicted = evicted[1:]
            self.returned.append(replaced)
        self.model[key] = (run, self.clock.now)
        expected: list[_Run] = []
        if self.max_age is not None:
            for old_key, (old, born) in list(self.model.items())[:-1]:
                if born > self.clock.now - self.max_age:
                    break
                expected.append(old)
                del self.model[old_key]
        while len(self.model) > self.max_runs:
            expected.append(self.model.popitem(last=False)[1][0])
        assert evicted == expected
        self.returned.extend(evicted)

    @rule(key=st.integers(0, 8))
    def pop(self, key: int) -> None:
        popped = self.table.pop(key)
        want = self.model.pop(key)[0] if key in self.model else None
        assert popped is want
        if popped is not None:
            self.returned.append(popped)

    @rule(key=st.integers(0, 8))
    def pop_a_stale_run(self, key: int) -> None:
        stale = _Run(key, -1)
        assert self.table.pop(key, stale) is None

    @rule(seconds=st.integers(0, 15))
    def time_passes(self, seconds: int) -> None:
        self.clock.now += seconds

    @precondition(lambda self: self.max_age is not None)
    @rule()
    def expire(self) -> None:
        assert self.max_age is not None
        expected = [run for run, born in self.model.values() if born <= self.clock.now - self.max_age]
        evicted = self.table.expire()
        assert evicted == expected
        for run in evicted:
            del self.model[run.key]
        self.returned.extend(evicted)

    @rule()
    def drain(self) -> None:
        left = self.table.drain()
        assert left == [run for run, _ in self.model.values()]
        self.model.clear()
        self.returned.extend(left)
        assert len(self.table) == 0

    @invariant()
    def bounded_and_in_step(self) -> None:
        if not hasattr(self, "table"):
            return
        assert len(self.table) <= self.max_runs
        assert self.table.values() == [run for run, _ in self.model.values()]
        for key, (run, _) in self.model.items():
            assert key in self.table and self.table.get(key) is run

    @invariant()
    def each_run_comes_back_once(self) -> None:
        if not hasattr(self, "table"):
            return
        ids = [id(run) for run in self.returned]
        assert len(ids) == len(set(ids)), "a run was handed back twice"
        held = {id(run) for run in self.table.values()}
        assert held.isdisjoint(ids)
        assert {id(run) for run in self.added} == held | set(ids)

    def teardown(self) -> None:
        if hasattr(self, "table"):
            self.returned.extend(self.table.drain())
            assert sorted(id(run) for run in self.returned) == sorted(id(run) for run in self.added)


OpenRunsMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
test_open_runs_state_machine = OpenRunsMachine.TestCase


def test_threads_adding_and_ending_runs_lose_none_and_stay_bounded() -> None:
    """Eight threads open and end runs on one table with a small bound: every
    run is ended exactly once, by its thread (pop) or by an eviction."""
    table: OpenRuns[tuple[int, int], _Run] = OpenRuns(16)
    per_thread = 20_000
    handed_back: list[list[_Run]] = [[] for _ in range(8)]
    evicted_counts = [0] * 8
    sizes: list[int] = []
    start = threading.Barrier(8)

    def work(thread: int) -> None:
        start.wait()
        mine = handed_back[thread]
        for serial in range(per_thread):
            key = (thread, serial)
            run = _Run(thread, serial)
            evicted = table.add(key, run)
            evicted_counts[thread] += len(evicted)
            mine.extend(evicted)
            sizes.append(len(table))
            if serial % 3:  # two runs in three end; the others are left open
                ended = table.pop(key, run)
                if ended is not None:
                    mine.append(ended)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: races show
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        sys.setswitchinterval(interval)
    assert not any(thread.is_alive() for thread in threads)
    left = table.drain()
    everything = [run for mine in handed_back for run in mine] + left
    assert len(everything) == 8 * per_thread
    assert len({id(run) for run in everything}) == 8 * per_thread
    assert max(sizes) <= 16
    assert table.evictions == sum(evicted_counts) > 0
