"""What ``dt.wrap_openai`` / ``dt.wrap_anthropic`` add to one API call.

The real openai and anthropic SDKs talk to a canned answer on a
MockTransport (no network, so the SDK's own work is all there is to compare
against). Each workload runs with:

* ``unwrapped``       the plain client, inside a run
* ``wrapped, no run`` the wrapped client outside any run (should be free)
* ``wrapped, run, no export`` inside a run of a client that exports
  nothing: the wrapper's own work and the run's event building
* ``wrapped, in run`` the wrapped client inside a run: llm.called and
  llm.responded per call, shipped over HTTP to a sink in another process

The configurations alternate call by call (order reversed every round), so
drift in machine load hits all alike. The table gives, per call, the median wall
time and the median CPU time of the calling thread (the agent's thread:
steadier than wall time on a busy machine, and it leaves out the drain
thread that sends events in the background), each with its ratio to
``unwrapped``. Streams are 20 content chunks plus the usage chunk, read to
the end.

    python benchmarks/bench_clients.py [--rounds 600]
"""

from __future__ import annotations

import argparse
import contextvars
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import anthropic
import httpx
import httpx2
import openai
from _sink_process import Sink

from dunetrace import Dunetrace, get_current_run
from dunetrace.integrations.anthropic import wrap_anthropic
from dunetrace.integrations.openai import wrap_openai

MESSAGES = [
    {"role": "system", "content": "You are a helpful travel assistant. Answer in one sentence."},
    {"role": "user", "content": "What is the best month to visit Lisbon, and why?"},
]
ANSWER = "May: warm days, few crowds, and the jacarandas are in bloom along the avenues."


def _openai_bodies() -> tuple[bytes, bytes]:
    whole = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 20, "total_tokens": 60},
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    words = ANSWER.split(" ")[:20]
    chunks = [chunk({"content": " " + w}) for w in words] + [chunk({}, "stop")]
    chunks.append(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "gpt-4o-mini",
            "choices": [],
            "usage": whole["usage"],
        }
    )
    stream = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return json.dumps(whole).encode(), stream.encode()


def _anthropic_bodies() -> tuple[bytes, bytes]:
    usage = {"input_tokens": 40, "output_tokens": 20}
    whole = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": ANSWER}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }
    start = dict(whole, content=[], stop_reason=None, usage={"input_tokens": 40, "output_tokens": 1})
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    events += [
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " " + w}}
        for w in ANSWER.split(" ")[:20]
    ]
    events += [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 20},
        },
        {"type": "message_stop"},
    ]
    stream = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
    return json.dumps(whole).encode(), stream.encode()


def _answer(http: Any, whole: bytes, stream: bytes) -> Callable[[Any], Any]:
    def handler(request: Any) -> Any:
        if b'"stream":true' in request.content.replace(b" ", b""):
            return http.Response(200, content=stream, headers={"content-type": "text/event-stream"})
        return http.Response(200, content=whole, headers={"content-type": "application/json"})

    return handler


def _workloads() -> dict[str, tuple[Any, Any, Callable[[Any], Any]]]:
    """name -> (plain client, wrapped client, one call)"""
    o_whole, o_stream = _openai_bodies()
    a_whole, a_stream = _anthropic_bodies()

    def openai_client() -> openai.OpenAI:
        transport = httpx.MockTransport(_answer(httpx, o_whole, o_stream))
        return openai.OpenAI(api_key="sk-bench", http_client=httpx.Client(transport=transport))

    def anthropic_client() -> anthropic.Anthropic:
        transport = httpx2.MockTransport(_answer(httpx2, a_whole, a_stream))
        return anthropic.Anthropic(api_key="sk-bench", http_client=httpx2.Client(transport=transport))

    def chat(client: Any) -> Any:
        return client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)

    def chat_stream(client: Any) -> Any:
        stream = client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        for _ in stream:
            pass

    def messages(client: Any) -> Any:
        return client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES[1:])

    def messages_stream(client: Any) -> Any:
        for _ in client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES[1:], stream=True):
            pass

    return {
        "openai chat": (openai_client(), openai_client(), chat),
        "openai chat stream": (openai_client(), openai_client(), chat_stream),
        "anthropic messages": (anthropic_client(), anthropic_client(), messages),
        "anthropic stream": (anthropic_client(), anthropic_client(), messages_stream),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=600, help="calls per workload and configuration")
    args = parser.parse_args()

    sink = Sink().start()
    dt = Dunetrace(endpoint=sink.url)
    workloads = _workloads()
    for _, wrapped, _ in workloads.values():
        (wrap_openai if isinstance(wrapped, openai.OpenAI) else wrap_anthropic)(wrapped, dt)

    quiet = Dunetrace(export="none")
    configs = ("unwrapped", "wrapped, no run", "wrapped, run, no export", "wrapped, in run")

    def in_run(client: Dunetrace | None) -> contextvars.Context:
        """A context whose current run stays open across the samples, so the
        configurations can alternate call by call."""
        context = contextvars.copy_context()
        if client is not None:
            context.run(client.run("bench-agent").__enter__)
        return context

    results: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for name, (plain, wrapped, call) in workloads.items():
        setups = {
            "unwrapped": (plain, in_run(dt)),
            "wrapped, no run": (wrapped, in_run(None)),
            "wrapped, run, no export": (wrapped, in_run(quiet)),
            "wrapped, in run": (wrapped, in_run(dt)),
        }

        def sample(client: Any, context: contextvars.Context, call: Any = call) -> tuple[float, float]:
            start, cpu = time.perf_counter(), time.thread_time()
            context.run(call, client)
            return (time.perf_counter() - start) * 1e6, (time.thread_time() - cpu) * 1e6

        for client, context in setups.values():  # warm up imports and caches
            for _ in range(20):
                sample(client, context)
        times: dict[str, list[tuple[float, float]]] = {config: [] for config in configs}
        for round_no in range(args.rounds):
            order = list(configs) if round_no % 2 == 0 else list(reversed(configs))
            for config in order:
                times[config].append(sample(*setups[config]))
        for _, context in setups.values():
            run = context.run(get_current_run)
            if run is not None:
                context.run(run.__exit__, None, None, None)
        results[name] = times
    dt.flush(10)
    stats = dt.stats()
    dt.shutdown()
    quiet.shutdown()
    delivered = sink.count()
    sink.stop()

    print(f"per-call cost on a MockTransport: median of {args.rounds} calls per row, in microseconds")
    print(f"{'workload':20}{'config':24}{'wall us':>10}{'ratio':>7}{'cpu us':>10}{'ratio':>7}{'+cpu us':>9}")
    for name, times in results.items():
        wall0 = statistics.median(t[0] for t in times["unwrapped"])
        cpu0 = statistics.median(t[1] for t in times["unwrapped"])
        for config in configs:
            wall = statistics.median(t[0] for t in times[config])
            cpu = statistics.median(t[1] for t in times[config])
            print(f"{name:20}{config:24}{wall:10.1f}{wall / wall0:7.3f}{cpu:10.1f}{cpu / cpu0:7.3f}{cpu - cpu0:9.1f}")
    print(f"events delivered to the sink: {delivered} (sent {stats.get('sent')}, dropped {stats.get('dropped')})")


if __name__ == "__main__":
    main()
