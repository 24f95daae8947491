"""OpenAI Agents SDK agents on a scripted OpenAI API (httpx MockTransport):
the Responses API (the SDK's default model) and Chat Completions."""

from __future__ import annotations

import json
from typing import Any

import httpx


class ScriptedResponses:
    """``POST /v1/responses``: ``search`` with the same arguments ``loops``
    times, then an answer; ``max_tokens_at`` answers incomplete there."""

    def __init__(self, loops: int, secret: str = "", answer: str = "none free") -> None:
        self.loops = loops
        self.secret = secret
        self.answer = answer
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls <= self.loops:
            output = [
                {
                    "type": "function_call",
                    "id": f"fc{self.calls}",
                    "call_id": f"call{self.calls}",
                    "name": "search",
                    "arguments": json.dumps({"q": f"rooms {self.secret}"}),
                    "status": "completed",
                }
            ]
        else:
            output = [
                {
                    "type": "message",
                    "id": "m1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": f"{self.answer} {self.secret}", "annotations": []}],
                }
            ]
        return httpx.Response(
            200,
            json={
                "id": f"resp{self.calls}",
                "object": "response",
                "created_at": 0,
                "model": "gpt-scripted",
                "status": "completed",
                "output": output,
                "parallel_tool_calls": True,
                "tool_choice": "auto",
                "tools": [],
                "usage": {
                    "input_tokens": 150 * self.calls,
                    "output_tokens": 9,
                    "total_tokens": 150 * self.calls + 9,
                    "input_tokens_details": {"cached_tokens": 0},
                    "output_tokens_details": {"reasoning_tokens": 0},
                },
            },
        )


def responses_model(script: Any) -> Any:
    from agents import OpenAIResponsesModel
    from openai import AsyncOpenAI

    client = AsyncOpenAI(
        api_key="sk-offline",
        base_url="http://127.0.0.1:9/v1",  # never reached: the transport answers
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(script)),
    )
    return OpenAIResponsesModel(model="gpt-scripted", openai_client=client)


def rooms_agent(loops: int, secret: str = "", name: str = "rooms") -> Any:
    from agents import Agent, function_tool

    @function_tool
    def search(q: str) -> str:
        """Search free rooms."""
        return f"nothing matches {q} {secret}"

    return Agent(
        name=name,
        instructions=f"You book rooms. {secret}",
        tools=[search],
        model=responses_model(ScriptedResponses(loops, secret)),
    )
