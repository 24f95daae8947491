"""An OpenAI Agents SDK agent that books hotel rooms, offline.

``instrument(dt, agent_id=...)`` is the whole integration: it adds a tracing
processor beside the SDK's own, and each ``Runner.run_sync`` below becomes a
Dunetrace run with its model calls (tokens, finish reasons) and tool calls;
the runner it puts in place applies live policies (``dt.add_policy``) to
those calls with no more lines.

Offline: the agent's model is the SDK's ``OpenAIResponsesModel`` on a real
``AsyncOpenAI`` client whose ``httpx.MockTransport`` plays the Responses API
by a script. The second question makes the model keep asking the booking
tool for the same room, as a real model does when a tool's answer does not
help it: the collector sees the same tool three times in five calls and
raises TOOL_LOOP (five calls: the upstream backend's TOOL_LOOP wants at
least five).

    python -m dunetrace.examples.openai_agents_agent   # against DUNETRACE_ENDPOINT
    dunetrace demo                                      # with a local collector
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from dunetrace import Dunetrace

EXTRA = "openai-agents"
AGENT_ID = "openai-agents-hotel-agent"

INSTRUCTIONS = "You help guests of the Harbour Hotel. Use the tools; do not guess."


class ScriptedResponses:
    """``POST /v1/responses``: calls ``tool`` with ``arguments`` ``times``
    times, then answers ``answer``."""

    def __init__(self, tool: str, arguments: dict[str, Any], times: int, answer: str) -> None:
        self.tool, self.arguments, self.times, self.answer = tool, arguments, times, answer
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls <= self.times:
            output: list[dict[str, Any]] = [
                {
                    "type": "function_call",
                    "id": f"fc_{self.calls}",
                    "call_id": f"call_{self.calls}",
                    "name": self.tool,
                    "arguments": json.dumps(self.arguments),
                    "status": "completed",
                }
            ]
        else:
            output = [
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": self.answer, "annotations": []}],
                }
            ]
        prompt_tokens = max(1, len(request.content) // 4)
        return httpx.Response(
            200,
            json={
                "id": f"resp_{self.calls}",
                "object": "response",
                "created_at": 0,
                "model": "gpt-4o-mini",
                "status": "completed",
                "output": output,
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "usage": {
                    "input_tokens": prompt_tokens,
                    "output_tokens": 12,
                    "total_tokens": prompt_tokens + 12,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens_details": {"reasoning_tokens": 0},
                },
            },
        )


def check_room(room_type: str, night: str) -> str:
    """Check whether a room type is free on a night (YYYY-MM-DD)."""
    return f"no {room_type} room is free on {night}"  # fully booked, whatever is asked


def breakfast_hours() -> str:
    """When breakfast is served."""
    return "Breakfast is served from 7:00 to 10:30 in the garden room."


def ask(question: str, script: ScriptedResponses) -> str:
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool
    from openai import AsyncOpenAI

    client = AsyncOpenAI(
        api_key="sk-offline",
        base_url="http://127.0.0.1:9/v1",
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(script)),
    )
    agent = Agent(
        name="hotel",
        instructions=INSTRUCTIONS,
        tools=[function_tool(check_room), function_tool(breakfast_hours)],
        model=OpenAIResponsesModel(model="gpt-4o-mini", openai_client=client),
    )
    return str(Runner.run_sync(agent, question).final_output)


def main(dt: Dunetrace) -> list[str]:
    from dunetrace.integrations.openai_agents import instrument, uninstrument

    # replace=True: only Dunetrace's processor, nothing for OpenAI's trace backend.
    instrument(dt, agent_id=AGENT_ID, replace=True)
    try:
        return [
            ask("When is breakfast?", ScriptedResponses("breakfast_hours", {}, 1, "Breakfast is from 7:00 to 10:30.")),
            ask(
                "Is a sea-view room free on 2026-12-24?",
                ScriptedResponses(
                    "check_room",
                    {"room_type": "sea-view", "night": "2026-12-24"},
                    5,
                    "Sorry, no sea-view room is free that night.",
                ),
            ),
        ]
    finally:
        uninstrument()


if __name__ == "__main__":
    client = Dunetrace()
    for line in main(client):
        print(line)
    client.shutdown()
