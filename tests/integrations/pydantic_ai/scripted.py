"""Scripted Pydantic AI models for the policy tests: a looping planner that
asks the booking tool again and again, and a backup model; both record
every request they are sent (the message parts, by class and content)."""

from __future__ import annotations

import asyncio
from typing import Any

from pydantic_ai import Agent
from pydantic_ai.messages import ModelMessage, ModelRequest, ModelResponse, TextPart, ToolCallPart, ToolReturnPart
from pydantic_ai.models.function import AgentInfo, FunctionModel

from dunetrace.examples import pydantic_ai_agent

TOOLS = [pydantic_ai_agent.check_room, pydantic_ai_agent.breakfast_hours]


def parts(messages: list[ModelMessage]) -> list[tuple[str, Any]]:
    """A request as (part class, content) pairs, in order."""
    return [(type(p).__name__, getattr(p, "content", None)) for m in messages for p in m.parts]


def user_texts(messages: list[ModelMessage]) -> list[str]:
    """The user prompt parts' texts of a request, in order."""
    return [
        p.content
        for m in messages
        if isinstance(m, ModelRequest)
        for p in m.parts
        if type(p).__name__ == "UserPromptPart" and isinstance(p.content, str)
    ]


class Planner:
    """The agent's own model: for a question about a room, calls
    ``check_room`` ``loops`` times, then answers; for any other question
    calls ``breakfast_hours`` once, then answers. ``requests`` records each
    request; ``pause`` yields to the event loop inside each (so concurrent
    runs interleave)."""

    def __init__(self, loops: int = 5, name: str = "offline-planner", pause: bool = False) -> None:
        self.loops = loops
        self.requests: list[list[ModelMessage]] = []
        self.pause = pause
        self.model = FunctionModel(self.reply, model_name=name)

    async def reply(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests.append(list(messages))
        if self.pause:
            await asyncio.sleep(0.001)
        returns = [p for m in messages for p in m.parts if isinstance(p, ToolReturnPart)]
        if "room" not in user_texts(messages)[0]:
            if not returns:
                return ModelResponse(parts=[ToolCallPart("breakfast_hours", {})], finish_reason="tool_call")
            return ModelResponse(parts=[TextPart("Breakfast is from 7:00.")], finish_reason="stop")
        if len(returns) < self.loops:
            call = ToolCallPart("check_room", {"room_type": "sea-view", "night": "2026-12-24"})
            return ModelResponse(parts=[call], finish_reason="tool_call")
        return ModelResponse(parts=[TextPart("Sorry, no sea-view room is free.")], finish_reason="stop")


class Backup:
    """The model a ``switch_model`` policy names: answers at once."""

    def __init__(self, name: str = "backup-model") -> None:
        self.requests: list[list[ModelMessage]] = []
        self.model = FunctionModel(self.reply, model_name=name)

    def reply(self, messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        self.requests.append(list(messages))
        return ModelResponse(parts=[TextPart("From the backup model: no room.")], finish_reason="stop")


def agent(model: Any, *capabilities: Any, name: str = "hotel", tools: list[Any] | None = None) -> Agent[None, str]:
    return Agent(
        model,
        system_prompt=pydantic_ai_agent.SYSTEM_PROMPT,
        tools=TOOLS if tools is None else tools,
        name=name,
        capabilities=list(capabilities),
    )


ROOM = "Is a sea-view room free on 2026-12-24?"
BREAKFAST = "When is breakfast?"
