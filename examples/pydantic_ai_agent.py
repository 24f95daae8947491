"""A Pydantic AI agent that books hotel rooms, offline.

``instrument(dt, agent_id=...)`` is the whole integration: Pydantic AI's own
OpenTelemetry spans of each run (model calls with tokens and finish reasons,
tool calls with their arguments and results) become a Dunetrace run. Nothing
here talks to a model provider: a ``FunctionModel`` plays the model.

The second question makes the model keep asking the booking tool for the
same room, as a real model does when a tool's answer does not help it: the
collector sees the same tool three times in five calls and raises TOOL_LOOP
(five calls: the upstream backend's TOOL_LOOP wants at least five).

    python -m dunetrace.examples.pydantic_ai_agent   # against DUNETRACE_ENDPOINT
    dunetrace demo                                    # with a local collector
"""

from __future__ import annotations

from typing import Any

from dunetrace import Dunetrace

EXTRA = "pydantic-ai"
AGENT_ID = "pydantic-ai-hotel-agent"

SYSTEM_PROMPT = "You help guests of the Harbour Hotel. Use the tools; do not guess."


def check_room(room_type: str, night: str) -> str:
    """Check whether a room type is free on a night (YYYY-MM-DD)."""
    return f"no {room_type} room is free on {night}"  # fully booked, whatever is asked


def breakfast_hours() -> str:
    """When breakfast is served."""
    return "Breakfast is served from 7:00 to 10:30 in the garden room."


def scripted_model(loops: int) -> Any:
    """A model that calls ``check_room`` ``loops`` times with the same
    arguments (or ``breakfast_hours`` once when ``loops`` is 0), then answers."""
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel

    def reply(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        returns = [p for m in messages for p in getattr(m, "parts", ()) if isinstance(p, ToolReturnPart)]
        if loops == 0:
            if not returns:
                return ModelResponse(parts=[ToolCallPart("breakfast_hours", {})], finish_reason="tool_call")
            return ModelResponse(
                parts=[TextPart("Breakfast is from 7:00 to 10:30 in the garden room.")], finish_reason="stop"
            )
        if len(returns) < loops:
            call = ToolCallPart("check_room", {"room_type": "sea-view", "night": "2026-12-24"})
            return ModelResponse(parts=[call], finish_reason="tool_call")
        return ModelResponse(parts=[TextPart("Sorry, no sea-view room is free that night.")], finish_reason="stop")

    return FunctionModel(reply, model_name="offline-planner")


def ask(question: str, loops: int) -> str:
    from pydantic_ai import Agent

    agent = Agent(scripted_model(loops), system_prompt=SYSTEM_PROMPT, tools=[check_room, breakfast_hours], name="hotel")
    return agent.run_sync(question).output


def main(dt: Dunetrace) -> list[str]:
    from dunetrace.integrations.pydantic_ai import instrument, uninstrument

    instrument(dt, agent_id=AGENT_ID)
    try:
        return [
            ask("When is breakfast?", loops=0),
            ask("Is a sea-view room free on 2026-12-24?", loops=5),
        ]
    finally:
        uninstrument()


if __name__ == "__main__":
    client = Dunetrace()
    for line in main(client):
        print(line)
    client.shutdown()
