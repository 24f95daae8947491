"""What DunetraceCallbackHandler's callbacks cost alone, replayed.

One invoke of the offline ``create_agent`` agent of
``examples/langchain_agent.py`` (five tool calls, then an answer) is
recorded: the 46 callbacks LangChain makes, with their arguments. They are
replayed in a loop on one handler per configuration (each replay a new run,
shipped to a sink on 127.0.0.1 in its own process): a handler that does
nothing (the baseline: a Python method call per callback), Dunetrace with
live detection off, and on (every detector). The configurations take turns
block by block; the table gives the median microseconds per replayed invoke,
and where the handler's time goes, callback by callback (the median call of
each of the 46, summed per callback name). Times are this thread's CPU
time: the thread that sends the events works meanwhile, and the time it
holds the interpreter lock is not the handler's.

Replayed, the callbacks run warm: inside a real invoke LangChain runs enough
code between two callbacks to evict ours from the CPU's caches, and the same
callbacks cost 2 to 4 times more (``bench_langchain.py`` times them there).
What this shows is the work the handler does, without LangChain's noise.

    python benchmarks/bench_langchain_replay.py [--rounds 20] [--replays 50]
    python benchmarks/bench_langchain_replay.py --against REV   # the same, REV's code beside the working tree's
    python benchmarks/bench_langchain_replay.py --bytecodes     # bytecodes and calls per invoke, no timing

``--against REV`` (a git revision) exports REV's SDK to a temporary folder and
runs this benchmark there and in the working tree, each in child processes,
alternating which goes first; printed: each side's bytecode counts, its
median over the rounds and the ratio working tree / REV. The counts
(``--bytecodes``: the replay once under ``sys.settrace``) do not move with
the machine's load, which on a shared machine moves the times by a third.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent

#: The callbacks the agent's invoke makes (the handler's other callbacks are
#: not called by it).
CALLBACKS = ("on_chain_start", "on_chain_end", "on_chat_model_start", "on_llm_end", "on_tool_start", "on_tool_end")

Call = tuple[str, tuple[Any, ...], dict[str, Any]]


def record() -> list[Call]:
    """The callbacks of one invoke of the example agent, in order."""
    from langchain_core.callbacks import BaseCallbackHandler

    from dunetrace.examples.langchain_agent import QUESTION, build_agent

    calls: list[Call] = []

    def recorder(name: str) -> Any:
        def callback(self: Any, *args: Any, **kwargs: Any) -> None:
            calls.append((name, args, kwargs))

        return callback

    recording = type("Recorder", (BaseCallbackHandler,), {"run_inline": True, **{n: recorder(n) for n in CALLBACKS}})
    agent = build_agent(polls=5)
    inputs = {"messages": [("user", QUESTION)]}
    agent.invoke(inputs, config={"callbacks": [recording()]})  # warm up LangChain's own first-call work
    calls.clear()
    agent.invoke(inputs, config={"callbacks": [recording()]})
    return calls


class EmptyHandler:
    """The baseline: every callback a method that does nothing."""

    def on_chain_start(self, *args: Any, **kwargs: Any) -> None:
        pass

    on_chain_end = on_chat_model_start = on_llm_end = on_tool_start = on_tool_end = on_chain_start


def replay(handler: Any, calls: list[Call]) -> None:
    for name, args, kwargs in calls:
        getattr(handler, name)(*args, **kwargs)


def measure(rounds: int, replays: int) -> dict[str, Any]:
    """Median us per replayed invoke per configuration, and per callback."""
    from bench_langchain import Sink

    from dunetrace import Dunetrace
    from dunetrace.integrations.langchain import DunetraceCallbackHandler

    calls = record()
    sink = Sink()
    clients = {"detectors off": Dunetrace(endpoint=sink.url, detectors=False)}
    clients["detectors on"] = Dunetrace(endpoint=sink.url, detectors=True)
    handlers: dict[str, Any] = {"empty handler": EmptyHandler()}
    handlers.update({name: DunetraceCallbackHandler(dt, agent_id="replay") for name, dt in clients.items()})
    for handler in handlers.values():
        for _ in range(20):
            replay(handler, calls)
    per_invoke: dict[str, list[float]] = {name: [] for name in handlers}
    per_call: dict[str, list[list[int]]] = {name: [[] for _ in calls] for name in handlers}
    # The collector's pauses would land on whichever replay is running: off
    # while timing, run between blocks.
    gc.disable()
    try:
        for round_no in range(rounds):
            order = list(handlers.items())
            if round_no % 2:
                order.reverse()
            for name, handler in order:
                start = time.thread_time()
                for _ in range(replays):
                    replay(handler, calls)
                per_invoke[name].append((time.thread_time() - start) / replays * 1e6)
                # The same calls one by one, for the breakdown.
                timings = per_call[name]
                for _ in range(max(1, replays // 5)):
                    for i, (callback, args, kwargs) in enumerate(calls):
                        method = getattr(handler, callback)
                        t0 = time.thread_time_ns()
                        method(*args, **kwargs)
                        timings[i].append(time.thread_time_ns() - t0)
                gc.collect()
    finally:
        gc.enable()
    for dt in clients.values():
        dt.shutdown()
    sink.close()
    breakdown: dict[str, dict[str, float]] = {}
    for name, timings in per_call.items():
        spent = dict.fromkeys(CALLBACKS, 0.0)
        for (callback, _, _), values in zip(calls, timings, strict=True):
            spent[callback] += statistics.median(values) / 1000
        breakdown[name] = spent
    return {
        "median": {name: statistics.median(values) for name, values in per_invoke.items()},
        "breakdown": breakdown,
        "callbacks": len(calls),
    }


class Counter:
    """A ``sys.settrace`` function counting, per callback, the Python
    functions called and the bytecodes they run."""

    def __init__(self) -> None:
        self.callback = ""
        self.bytecodes = dict.fromkeys(CALLBACKS, 0)
        self.functions = dict.fromkeys(CALLBACKS, 0)

    def trace(self, frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        frame.f_trace_lines = False
        self.functions[self.callback] += 1
        return self.each

    def each(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "opcode":
            self.bytecodes[self.callback] += 1
        return self.each


def count_bytecodes() -> dict[str, Any]:
    """Bytecodes run and Python functions called per replayed invoke, per
    configuration and callback: the machine's load does not move these."""
    from bench_langchain import Sink

    from dunetrace import Dunetrace
    from dunetrace.integrations.langchain import DunetraceCallbackHandler

    calls = record()
    sink = Sink()
    result: dict[str, Any] = {}
    for name, detectors in (("detectors off", False), ("detectors on", True)):
        dt = Dunetrace(endpoint=sink.url, detectors=detectors)
        handler = DunetraceCallbackHandler(dt, agent_id="replay")
        for _ in range(20):
            replay(handler, calls)
        counter = Counter()
        for callback, args, kwargs in calls:
            counter.callback = callback
            method = getattr(handler, callback)
            sys.settrace(counter.trace)
            try:
                method(*args, **kwargs)
            finally:
                sys.settrace(None)
        result[name] = {"bytecodes": counter.bytecodes, "functions": counter.functions}
        dt.shutdown()
    sink.close()
    return result


def print_bytecodes(result: dict[str, Any]) -> None:
    print("one recorded invoke, replayed once under sys.settrace: bytecodes run (Python functions called)")
    for name, counts in result.items():
        parts = ", ".join(f"{c} {counts['bytecodes'][c]} ({counts['functions'][c]})" for c in CALLBACKS)
        total = sum(counts["bytecodes"].values())
        print(f"  {name}: {total} ({sum(counts['functions'].values())}); {parts}")


def print_one(result: dict[str, Any]) -> None:
    medians = result["median"]
    base = medians["empty handler"]
    print(f"one recorded invoke ({result['callbacks']} callbacks), replayed; us per invoke (median of rounds)")
    print(f"{'':16}{'us/invoke':>11}{'minus empty':>13}")
    for name, value in medians.items():
        print(f"{name:16}{value:11.1f}{value - base:13.1f}")
    off, on = medians["detectors off"], medians["detectors on"]
    print(f"live detection adds {on - off:.1f} us per invoke ({(on - base) / (off - base):.2f}x the handler's own)")
    print("where it goes, us per invoke (median call of each, summed per callback, the empty handler's taken out):")
    empty = result["breakdown"]["empty handler"]
    for name in ("detectors off", "detectors on"):
        spent = {callback: us - empty[callback] for callback, us in result["breakdown"][name].items()}
        parts = ", ".join(f"{callback} {us:.1f}" for callback, us in spent.items())
        print(f"  {name}: {sum(spent.values()):.1f} ({parts})")


def export(rev: str, into: pathlib.Path) -> None:
    """REV's SDK laid out as the installed package is (see setup.py)."""
    folders = ["dunetrace_core", "integrations", "examples"]
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, *folders], capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
    (into / "dunetrace").symlink_to("dunetrace_core")
    (into / "dunetrace_core" / "integrations").symlink_to("../integrations")
    (into / "dunetrace_core" / "examples").symlink_to("../examples")


def child(path: str | None, *options: str) -> dict[str, Any]:
    """This benchmark's JSON result, run with the SDK found at ``path``
    (None: the installed one, the working tree)."""
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = os.pathsep.join([path, str(HERE), env.get("PYTHONPATH", "")])
    out = subprocess.run(
        [sys.executable, __file__, "--json", *options], capture_output=True, text=True, env=env, check=True
    ).stdout
    result: dict[str, Any] = json.loads(out.splitlines()[-1])
    return result


def against(rev: str, rounds: int, replays: int) -> None:
    sides: dict[str, list[dict[str, Any]]] = {rev: [], "working tree": []}
    with tempfile.TemporaryDirectory() as tmp:
        export(rev, pathlib.Path(tmp))
        for side, path in ((rev, tmp), ("working tree", None)):
            print(f"{side}:", end=" ")
            print_bytecodes(child(path, "--bytecodes"))
        for i in range(rounds):
            order = [(rev, tmp), ("working tree", None)]
            for side, path in order if i % 2 == 0 else order[::-1]:
                sides[side].append(child(path, "--rounds", "6", "--replays", str(replays)))
    print(f"{rev} against the working tree: {rounds} rounds of child processes, us per replayed invoke")
    print(f"{'':16}{rev[:12]:>14}{'working tree':>14}{'ratio':>8}")
    for name in sides[rev][0]["median"]:
        before = statistics.median(r["median"][name] for r in sides[rev])
        after = statistics.median(r["median"][name] for r in sides["working tree"])
        print(f"{name:16}{before:14.1f}{after:14.1f}{after / before:7.2f}x")
    for name in ("detectors off", "detectors on"):
        for side, results in sides.items():
            spent = {
                c: statistics.median(r["breakdown"][name][c] - r["breakdown"]["empty handler"][c] for r in results)
                for c in CALLBACKS
            }
            parts = ", ".join(f"{callback} {us:.1f}" for callback, us in spent.items())
            print(f"  {name}, {side}: {sum(spent.values()):.1f} ({parts})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--replays", type=int, default=50, help="replayed invokes per timed block")
    parser.add_argument("--against", metavar="REV", help="a git revision to compare the working tree with")
    parser.add_argument("--bytecodes", action="store_true", help="count bytecodes and calls instead of timing")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # a child of --against
    args = parser.parse_args()
    if args.against:
        against(args.against, args.rounds, args.replays)
        return
    sys.path.insert(0, str(HERE))
    result = count_bytecodes() if args.bytecodes else measure(args.rounds, args.replays)
    if args.json:
        print(json.dumps(result))
    elif args.bytecodes:
        print_bytecodes(result)
    else:
        print_one(result)


if __name__ == "__main__":
    main()
