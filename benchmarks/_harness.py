"""What the integration benchmarks share: timing a batch of agent runs,
running the configurations interleaved round by round (the order
alternating, so drift in the machine's load hits all alike), and the table
of medians and ratios to the baseline they print.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

Config = TypeVar("Config")

#: Per configuration, one figure per round.
Timings = dict[str, list[float]]


def timed(work: Callable[[], object], runs: int) -> tuple[float, float]:
    """(wall, CPU) milliseconds per call of ``work``, over ``runs`` calls.
    CPU time is the whole process's, the drain thread included; on a loaded
    machine it is the steadier of the two."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(runs):
        work()
    return (time.perf_counter() - wall) / runs * 1000, (time.process_time() - cpu) / runs * 1000


def interleaved(
    configs: dict[str, Config], rounds: int, measure: Callable[[Config], tuple[float, float]]
) -> tuple[Timings, Timings]:
    """``measure(config)`` for every configuration in every round, in the
    listed order in even rounds and reversed in odd ones; returns the wall
    and CPU figures per configuration."""
    walls: Timings = {name: [] for name in configs}
    cpus: Timings = {name: [] for name in configs}
    for round_no in range(rounds):
        order = list(configs.items())
        if round_no % 2:
            order.reverse()
        for name, config in order:
            wall, cpu = measure(config)
            walls[name].append(wall)
            cpus[name].append(cpu)
    return walls, cpus


def print_table(names: Iterable[str], walls: Timings, cpus: Timings, baseline: str) -> None:
    """Median wall and CPU milliseconds per run, the fastest batch's wall
    time, and each one's ratio to ``baseline``."""
    wall_base, cpu_base, best_base = (
        statistics.median(walls[baseline]),
        statistics.median(cpus[baseline]),
        min(walls[baseline]),
    )
    print(f"{'':16}{'wall ms/run':>12}{'ratio':>8}{'CPU ms/run':>12}{'ratio':>8}{'best wall':>11}{'ratio':>8}")
    for name in names:
        wall, cpu, best = statistics.median(walls[name]), statistics.median(cpus[name]), min(walls[name])
        print(
            f"{name:16}{wall:12.2f}{wall / wall_base:7.2f}x{cpu:12.2f}{cpu / cpu_base:7.2f}x"
            f"{best:11.2f}{best / best_base:7.2f}x"
        )
