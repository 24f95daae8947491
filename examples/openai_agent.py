"""A tool-calling agent on the OpenAI SDK, reported by ``dt.wrap_openai``.

The agent loop is plain OpenAI code: ask the model, run the tools it calls,
send the results back, stream the final answer. Wrapping the client is the
only Dunetrace line besides ``with dt.run(...)``: every model call inside
the run is reported with its tokens, latency and finish reason, the tool
calls with ``@dt.tool``. The second question needs two tools at once.

Offline: the real ``openai`` SDK talks to a scripted model on an
``httpx.MockTransport`` instead of api.openai.com. Point ``OpenAI()`` at the
real API and nothing else changes.

    python -m dunetrace.examples.openai_agent     # against DUNETRACE_ENDPOINT
    dunetrace demo                                # with a local collector
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from dunetrace import Dunetrace

EXTRA = "openai"
AGENT_ID = "openai-weather-agent"

MODEL = "gpt-4o-mini"
SYSTEM_PROMPT = "You answer weather questions. Call get_weather for each city you are asked about."
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city.",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        },
    }
]


# -- the scripted model (stands in for api.openai.com) -------------------------


def _scripted_model(request: httpx.Request) -> httpx.Response:
    """Calls get_weather for each city named in the question that has no
    tool result yet, then answers from the results. Streams, as asked."""
    body = json.loads(request.content)
    messages = body["messages"]
    question = next(m["content"] for m in messages if m["role"] == "user")
    known = {json.loads(m["content"])["city"] for m in messages if m["role"] == "tool"}
    missing = [c for c in ("Lisbon", "Oslo") if c in question and c not in known]
    prompt_tokens = max(1, len(json.dumps(messages)) // 4)
    if missing:
        calls = [(f"call_{len(known)}_{i}", json.dumps({"city": city})) for i, city in enumerate(missing)]
        chunks = [_chunk({"role": "assistant", "content": None})]
        chunks += [
            _chunk(
                {
                    "tool_calls": [
                        {
                            "index": i,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": "get_weather", "arguments": args},
                        }
                    ]
                }
            )
            for i, (call_id, args) in enumerate(calls)
        ]
        finish = "tool_calls"
    else:
        results = [json.loads(m["content"]) for m in messages if m["role"] == "tool"]
        answer = " ".join(f"{r['city']}: {r['summary']}, {r['celsius']} C." for r in results) or "Which city?"
        words = answer.split(" ")
        chunks = [_chunk({"role": "assistant", "content": ""})]
        chunks += [_chunk({"content": w if i == 0 else " " + w}) for i, w in enumerate(words)]
        finish = "stop"
    chunks.append(_chunk({}, finish))
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 4 * len(chunks),
        "total_tokens": prompt_tokens + 4 * len(chunks),
    }
    chunks.append(
        {
            "id": "chatcmpl-demo",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": MODEL,
            "choices": [],
            "usage": usage,
        }
    )
    sse = "".join(f"data: {json.dumps(c)}\n\n" for c in chunks) + "data: [DONE]\n\n"
    return httpx.Response(200, content=sse.encode(), headers={"content-type": "text/event-stream"})


def _chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-demo",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def offline_client() -> Any:
    from openai import OpenAI

    return OpenAI(api_key="sk-offline", http_client=httpx.Client(transport=httpx.MockTransport(_scripted_model)))


# -- the agent -----------------------------------------------------------------


def make_tools(dt: Dunetrace) -> dict[str, Any]:
    @dt.tool
    def get_weather(city: str) -> str:
        forecasts = {"Lisbon": ("sunny", 21), "Oslo": ("light snow", -3)}
        summary, celsius = forecasts.get(city, ("unknown", 0))
        return json.dumps({"city": city, "summary": summary, "celsius": celsius})

    return {"get_weather": get_weather}


def answer(dt: Dunetrace, client: Any, tools: dict[str, Any], question: str, on_text: Any = None) -> str:
    with dt.run(AGENT_ID, user_input=question, system_prompt=SYSTEM_PROMPT, model=MODEL, tools=sorted(tools)) as run:
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": question},
        ]
        for _ in range(5):  # a bound on the loop, as every agent needs
            with client.chat.completions.stream(
                model=MODEL, messages=messages, tools=TOOLS, stream_options={"include_usage": True}
            ) as stream:
                for event in stream:
                    if event.type == "content.delta" and on_text is not None:
                        on_text(event.delta)  # shown to the user as it is written
                message = stream.get_final_completion().choices[0].message
            if not message.tool_calls:
                run.final_answer()
                return message.content or ""
            messages.append(
                {
                    "role": "assistant",
                    "content": message.content,
                    "tool_calls": [
                        {
                            "id": c.id,
                            "type": "function",
                            "function": {"name": c.function.name, "arguments": c.function.arguments},
                        }
                        for c in message.tool_calls
                    ],
                }
            )
            for call in message.tool_calls:
                result = tools[call.function.name](**json.loads(call.function.arguments))
                messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
        return "I could not finish in five steps."


def main(dt: Dunetrace) -> list[str]:
    client = dt.wrap_openai(offline_client())
    tools = make_tools(dt)
    return [
        answer(dt, client, tools, "What's the weather in Lisbon?"),
        answer(dt, client, tools, "Compare the weather in Lisbon and Oslo."),
    ]


if __name__ == "__main__":
    dt = Dunetrace()
    for text in main(dt):
        print(text)
    dt.shutdown()
