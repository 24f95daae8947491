"""An agent with no framework: the core API alone, offline.

``with dt.run(...)`` reports one run; ``@dt.tool`` reports each call of a
function as a tool call; the fake model's calls are reported by hand with
``run.llm_called`` / ``run.llm_responded``. The model below keeps asking for
the same search, as a real one does when a tool's answer does not help it:
the collector sees the same tool three times in five calls and raises
TOOL_LOOP.

    python -m dunetrace.examples.manual_agent      # against DUNETRACE_ENDPOINT
    dunetrace demo                                  # with a local collector
"""

from __future__ import annotations

import time
from typing import Any

from dunetrace import Dunetrace

EXTRA = None  # nothing beyond the core package
AGENT_ID = "manual-agent"

SYSTEM_PROMPT = "You answer travel questions. Use search_flights to look up flights."


def fake_model(question: str, observations: list[str]) -> dict[str, Any]:
    """Stands in for an LLM: asks for a search until it has two useful
    answers, which the stubborn search below never gives."""
    useful = [o for o in observations if "no flights" not in o]
    if len(useful) >= 2 or len(observations) >= 4:
        return {"answer": f"I could not find a flight for: {question}", "finish_reason": "stop"}
    return {"tool": "search_flights", "args": {"origin": "LIS", "destination": "NRT"}, "finish_reason": "tool_calls"}


def make_tools(dt: Dunetrace) -> dict[str, Any]:
    @dt.tool
    def search_flights(origin: str, destination: str) -> str:
        return f"no flights from {origin} to {destination} today"

    @dt.tool(name="currency")
    def convert(amount: float, to: str) -> str:
        return f"{amount * 1.08:.2f} {to}"

    return {"search_flights": search_flights, "currency": convert}


def answer(dt: Dunetrace, tools: dict[str, Any], question: str) -> str:
    with dt.run(
        AGENT_ID, user_input=question, system_prompt=SYSTEM_PROMPT, model="fake-model-1", tools=sorted(tools)
    ) as run:
        observations: list[str] = []
        while True:
            started = time.perf_counter()
            step = run.llm_called("fake-model-1", prompt_tokens=120 + 40 * len(observations), prompt=question)
            reply = fake_model(question, observations)
            text = reply.get("answer", "")
            run.llm_responded(
                completion_tokens=12,
                latency_ms=(time.perf_counter() - started) * 1000,
                finish_reason=reply["finish_reason"],
                output=text or str(reply.get("args")),
                step=step,
            )
            if "answer" in reply:
                run.final_answer()
                return text
            observations.append(tools[reply["tool"]](**reply["args"]))


def main(dt: Dunetrace) -> list[str]:
    tools = make_tools(dt)
    return [
        # A healthy run: one model call, no tool needed.
        _healthy(dt, tools),
        # The loop: search_flights four times with the same arguments.
        answer(dt, tools, "Is there a flight from Lisbon to Tokyo tomorrow?"),
    ]


def _healthy(dt: Dunetrace, tools: dict[str, Any]) -> str:
    with dt.run(
        AGENT_ID,
        user_input="Convert 100 EUR to USD",
        system_prompt=SYSTEM_PROMPT,
        model="fake-model-1",
        tools=sorted(tools),
    ) as run:
        step = run.llm_called("fake-model-1", prompt_tokens=90)
        run.llm_responded(completion_tokens=8, latency_ms=3.0, finish_reason="tool_calls", output_length=30, step=step)
        result: str = tools["currency"](100, "USD")
        step = run.llm_called("fake-model-1", prompt_tokens=130)
        run.llm_responded(completion_tokens=10, latency_ms=3.0, finish_reason="stop", output=result, step=step)
        run.final_answer()
        return result


if __name__ == "__main__":
    client = Dunetrace()
    for line in main(client):
        print(line)
    client.shutdown()
