"""What ``dt.wrap_openai`` / ``dt.wrap_anthropic`` add to one API call.

The real openai and anthropic SDKs talk to a canned answer on a
MockTransport (no network, so the SDK's own work is all there is to compare
against). Each workload runs with:

* ``unwrapped``       the plain client, inside a run
* ``wrapped, no run`` the wrapped client outside any run (should be free)
* ``wrapped, in run`` the wrapped client inside a run: llm.called and
  llm.responded per call, shipped over HTTP to a sink in another process

The three are interleaved round by round (order alternating), so drift in
machine load hits all alike. The table gives the median microseconds per
call, the ratio to ``unwrapped`` and the difference. Streams are 20 content
chunks plus the usage chunk, read to the end.

    python benchmarks/bench_clients.py [--rounds 11] [--calls 100]
"""

from __future__ import annotations

import argparse
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

from dunetrace import Dunetrace
from dunetrace.integrations.anthropic import wrap_anthropic
from dunetrace.integrations.openai import wrap_openai

MESSAGES = [
    {"role": "system", "content": "You are a helpful travel assistant. Answer in one sentence."},
    {"role": "user", "content": "What is the best month to visit Lisbon, and why?"},
]
ANSWER = "May: warm days, few crowds, and the jacarandas are in bloom along the avenues."


def _openai_bodies() -> tuple[bytes, bytes]:
    whole = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "gpt-4o-mini",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWER}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 40, "completion_tokens": 20, "total_tokens": 60},
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-mini",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    words = ANSWER.split(" ")[:20]
    chunks = [chunk({"content": " " + w}) for w in words] + [chunk({}, "stop")]
    chunks.append({"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "gpt-4o-mini",
                   "choices": [], "usage": whole["usage"]})
    stream = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return json.dumps(whole).encode(), stream.encode()


def _anthropic_bodies() -> tuple[bytes, bytes]:
    usage = {"input_tokens": 40, "output_tokens": 20}
    whole = {
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": ANSWER}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": usage,
    }
    start = dict(whole, content=[], stop_reason=None, usage={"input_tokens": 40, "output_tokens": 1})
    events: list[dict[str, Any]] = [
        {"type": "message_start", "message": start},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    events += [{"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " " + w}}
               for w in ANSWER.split(" ")[:20]]
    events += [
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 20}},
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
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--calls", type=int, default=100, help="calls per timed batch")
    args = parser.parse_args()

    sink = Sink().start()
    dt = Dunetrace(endpoint=sink.url)
    workloads = _workloads()
    for plain, wrapped, _ in workloads.values():
        (wrap_openai if isinstance(wrapped, openai.OpenAI) else wrap_anthropic)(wrapped, dt)

    def batch(client: Any, call: Callable[[Any], Any], in_run: bool) -> float:
        start = time.perf_counter()
        if in_run:
            with dt.run("bench-agent"):
                for _ in range(args.calls):
                    call(client)
        else:
            for _ in range(args.calls):
                call(client)
        return (time.perf_counter() - start) / args.calls * 1e6

    configs = ("unwrapped", "wrapped, no run", "wrapped, in run")
    results: dict[str, dict[str, list[float]]] = {}
    for name, (plain, wrapped, call) in workloads.items():
        runs = {
            "unwrapped": lambda: batch(plain, call, True),
            "wrapped, no run": lambda: batch(wrapped, call, False),
            "wrapped, in run": lambda: batch(wrapped, call, True),
        }
        for run in runs.values():  # warm up imports and caches
            run()
        times: dict[str, list[float]] = {config: [] for config in configs}
        for round_no in range(args.rounds):
            order = list(configs) if round_no % 2 == 0 else list(reversed(configs))
            for config in order:
                times[config].append(runs[config]())
        results[name] = times
    dt.flush(10)
    stats = dt.stats()
    dt.shutdown()
    delivered = sink.count()
    sink.stop()

    print(f"per-call cost, MockTransport, {args.rounds} rounds x {args.calls} calls; median us/call")
    print(f"{'workload':20}{'config':18}{'us/call':>10}{'ratio':>8}{'+us':>9}")
    for name, times in results.items():
        base = statistics.median(times["unwrapped"])
        for config in configs:
            median = statistics.median(times[config])
            print(f"{name:20}{config:18}{median:10.1f}{median / base:8.3f}{median - base:9.1f}")
    print(f"events delivered to the sink: {delivered} (sent {stats.get('sent')}, dropped {stats.get('dropped')})")


if __name__ == "__main__":
    main()
