"""What DunetraceCallbackHandler costs a LangGraph agent.

The offline ``create_agent`` agent of ``examples/langchain_agent.py`` (five
tool calls, then an answer) is invoked without callbacks, with an empty
callback handler (LangChain's own dispatch cost), and with
DunetraceCallbackHandler shipping to a local sink on 127.0.0.1 over HTTP, with
live detection on (the default: every detector on each event) and off.
The four are interleaved round by round, so drift in machine load hits all
of them alike; the table gives median milliseconds per invoke and the ratio
to the run without callbacks, as wall time (what the agent waits) and as
CPU time (what the process spends, the thread that sends the events
included). The client runs with its default options, as a user's would.

A last pass times each of the handler's callbacks (the median call; the two
clients take turns invoke by invoke) and prints where the handler's cost
goes: LangChain's dispatch, the time inside the handler, and the thread
that sends the events. ``bench_langchain_replay.py`` times the same
callbacks replayed, without LangChain.

    python benchmarks/bench_langchain.py [--rounds 30] [--invokes 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

from langchain_core.callbacks import BaseCallbackHandler

from dunetrace import Dunetrace
from dunetrace.examples.langchain_agent import AGENT_ID, QUESTION, build_agent
from dunetrace.integrations.langchain import DunetraceCallbackHandler

# The sink runs in its own process, as a collector would: the agent's
# process pays for sending events, not for receiving them.
SINK = r"""
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
count = 0
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
    def _answer(self, data):
        # Status line, headers and body in one write, as a real server sends
        # them: written apart, the body waits for the client's delayed ACK
        # (Nagle), some 40 ms per request on Linux loopback.
        raw = json.dumps(data).encode()
        status = "202 Accepted" if self.command == "POST" else "200 OK"
        head = f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(raw)}\r\n\r\n"
        self.wfile.write(head.encode() + raw)
    def do_GET(self):
        self._answer({"events": count})
    def do_POST(self):
        global count
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        count += len(json.loads(body).get("events", []))
        self._answer({"accepted": 1, "batch_id": "b", "queued_at": 0})
server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


class Sink:
    """``POST /v1/ingest`` answered 202 by a child process; ``GET /`` tells
    how many events arrived."""

    def __init__(self) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", SINK], stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.url = f"http://127.0.0.1:{int(self.process.stdout.readline())}"

    @property
    def events(self) -> int:
        with urllib.request.urlopen(self.url + "/") as answer:
            return int(json.load(answer)["events"])

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(5)


class EmptyHandler(BaseCallbackHandler):
    """Does nothing: what LangChain's callback dispatch alone costs."""

    run_inline = True


#: The handler's callbacks, timed one by one in the breakdown pass.
CALLBACKS = ("on_chain_start", "on_chain_end", "on_chat_model_start", "on_llm_end", "on_tool_start", "on_tool_end")


def time_inside(agent: Any, inputs: Any, clients: dict[str, Dunetrace], invokes: int) -> dict[str, dict[str, float]]:
    """Per client, microseconds per invoke spent inside each of the
    handler's callbacks: every call's time, summed. (A median call times
    the calls per invoke would hide what only the run's first and last
    callbacks do, starting and ending the run: 60 to 80 us each, against
    4 to 5 us for the other chain callbacks.) The clients take turns
    invoke by invoke, so drift in the machine's load hits them alike."""
    spent: dict[str, dict[str, list[int]]] = {c: {name: [] for name in CALLBACKS} for c in clients}

    def timed(name: str, calls: list[int]) -> Any:
        inner = getattr(DunetraceCallbackHandler, name)

        def callback(self: Any, *args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter_ns()
            try:
                return inner(self, *args, **kwargs)
            finally:
                calls.append(time.perf_counter_ns() - start)

        return callback

    configs = {}
    for c, dt in clients.items():
        methods = {name: timed(name, spent[c][name]) for name in CALLBACKS}
        timing = type("TimedHandler", (DunetraceCallbackHandler,), methods)
        configs[c] = {"callbacks": [timing(dt, agent_id=AGENT_ID)]}
    for config in configs.values():
        for _ in range(5):
            agent.invoke(inputs, config=config)
    for by_name in spent.values():
        for calls in by_name.values():
            calls.clear()
    for _ in range(invokes):
        for config in configs.values():
            agent.invoke(inputs, config=config)
    return {
        c: {name: sum(calls) / invokes / 1000 for name, calls in by_name.items() if calls}
        for c, by_name in spent.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--invokes", type=int, default=10, help="invokes per timed batch")
    args = parser.parse_args()

    sink = Sink()
    # "dunetrace" runs every live detector on each event (the default);
    # "detectors off" is Dunetrace(detectors=False).
    clients = {
        "dunetrace": Dunetrace(endpoint=sink.url, detectors=True),
        "detectors off": Dunetrace(endpoint=sink.url, detectors=False),
    }
    agent = build_agent(polls=5)
    inputs = {"messages": [("user", QUESTION)]}
    configs: dict[str, dict[str, Any]] = {
        "no callbacks": {},
        "empty handler": {"callbacks": [EmptyHandler()]},
        **{name: {"callbacks": [DunetraceCallbackHandler(dt, agent_id=AGENT_ID)]} for name, dt in clients.items()},
    }
    for config in configs.values():  # warm up imports, caches, the drain thread
        for _ in range(5):
            agent.invoke(inputs, config=config)
    for dt in clients.values():
        dt.flush()
    sent_before = sink.events
    batches_before = sum(dt.stats()["batches_sent"] for dt in clients.values())
    # The thread that ships events works whenever its timer fires, often
    # while another configuration is being timed: its CPU time is read from
    # its own clock and charged to its client's row, whichever block it fell in.
    sender_clocks = {}
    for name, dt in clients.items():
        sender = dt._buffer._thread
        assert sender is not None and sender.ident is not None
        sender_clocks[name] = time.pthread_getcpuclockid(sender.ident)
    shipping = dict.fromkeys(clients, 0.0)

    wall: dict[str, list[float]] = {name: [] for name in configs}
    cpu: dict[str, list[float]] = {name: [] for name in configs}
    for round_no in range(args.rounds):
        order = list(configs.items())
        if round_no % 2:
            order.reverse()
        for name, config in order:
            start_ship = {c: time.clock_gettime(clock) for c, clock in sender_clocks.items()}
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(args.invokes):
                agent.invoke(inputs, config=config)
            elapsed, used = time.perf_counter() - start, time.process_time() - start_cpu
            shipped = {c: time.clock_gettime(clock) - start_ship[c] for c, clock in sender_clocks.items()}
            for c, seconds in shipped.items():
                shipping[c] += seconds
            wall[name].append(elapsed / args.invokes * 1000)
            cpu[name].append((used - sum(shipped.values())) / args.invokes * 1000)

    for c, dt in clients.items():
        start_ship_c = time.clock_gettime(sender_clocks[c])
        dt.flush(10)
        shipping[c] += time.clock_gettime(sender_clocks[c]) - start_ship_c
    shipping_per_invoke = {c: shipped / (args.rounds * args.invokes) * 1000 for c, shipped in shipping.items()}
    for c in clients:
        cpu[c] = [value + shipping_per_invoke[c] for value in cpu[c]]
    # run.started + 11 llm/tool pairs + run.completed, and with detection on
    # the run's live signal (TOOL_LOOP: it polls one tool five times)
    expected = args.rounds * args.invokes * (24 + 25)
    delivered = sink.events - sent_before
    batches = sum(dt.stats()["batches_sent"] for dt in clients.values()) - batches_before
    # Where the handler's share goes: its callbacks timed one by one, in a
    # pass of its own after the table's (the timing would weigh on it).
    inside = time_inside(agent, inputs, clients, args.rounds * 2)
    for dt in clients.values():
        dt.shutdown()
    sink.close()

    print(f"LangGraph create_agent, 5 tool calls + answer; {args.rounds} rounds x {args.invokes} invokes")
    print(f"{'':16}{'wall ms/invoke':>16}{'ratio':>8}{'paired':>8}{'cpu ms/invoke':>16}{'ratio':>8}{'paired':>8}")
    for name in configs:
        row = f"{name:16}"
        for series in (wall, cpu):
            base = series["no callbacks"]
            median = statistics.median(series[name])
            # Each round's own ratio: load that drifts between rounds cancels out.
            paired = statistics.median(v / b for v, b in zip(series[name], base, strict=True))
            row += f"{median:16.2f}{median / statistics.median(base):7.2f}x{paired:7.2f}x"
        print(row)
    print("medians over rounds; paired: the median of each round's own ratio; cpu: process time, with")
    shipped_ms = ", ".join(f"{ms:.2f}" for ms in shipping_per_invoke.values())
    print(f"the sending threads' ({shipped_ms} ms/invoke on average) moved to their client's row")
    print(f"events delivered to the sink: {delivered} of {expected}, in {batches} requests")
    dispatch = statistics.median(cpu["empty handler"]) - statistics.median(cpu["no callbacks"])
    print(f"where the time goes, CPU ms/invoke: LangChain's dispatch to a handler {dispatch:.2f} (empty handler)")
    for name, spent in inside.items():
        per_callback = ", ".join(f"{callback} {us:.0f}" for callback, us in spent.items())
        total = sum(spent.values()) / 1000
        shipped = shipping_per_invoke[name]
        print(f"  {name}: inside the handler {total:.2f} ({per_callback} us), sending thread {shipped:.2f}")


if __name__ == "__main__":
    main()
