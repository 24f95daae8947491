"""Offline agents of real frameworks that emit OpenTelemetry spans on their
own: Pydantic AI (GenAI conventions) with a FunctionModel, and smolagents
(through the OpenInference instrumentor) with its OpenAI model on an httpx
MockTransport. Each loops on a tool when told to, as a model does when the
tool's answer does not help it."""

from __future__ import annotations

import json
from typing import Any

import httpx
from opentelemetry.sdk.trace import TracerProvider


def pydantic_ai_agent(provider: TracerProvider, *, loops: int, secret: str = "", name: str = "pai-agent") -> Any:
    """A Pydantic AI agent whose model asks for ``search`` ``loops`` times
    with the same arguments, then answers."""
    from pydantic_ai import Agent
    from pydantic_ai.messages import ModelMessage, ModelResponse, TextPart, ToolCallPart
    from pydantic_ai.models.function import AgentInfo, FunctionModel
    from pydantic_ai.models.instrumented import InstrumentationSettings

    def model(messages: list[ModelMessage], info: AgentInfo) -> ModelResponse:
        calls = sum(isinstance(p, ToolCallPart) for m in messages if isinstance(m, ModelResponse) for p in m.parts)
        if calls < loops:
            return ModelResponse(
                parts=[ToolCallPart("search", {"query": f"rooms {secret}"})], finish_reason="tool_call"
            )
        return ModelResponse(parts=[TextPart(f"no room is free {secret}")], finish_reason="stop")

    agent = Agent(FunctionModel(model, model_name="scripted"), system_prompt=f"You book rooms. {secret}", name=name)
    agent.instrument = InstrumentationSettings(tracer_provider=provider)

    @agent.tool_plain
    def search(query: str) -> str:
        """Search free rooms."""
        return f"nothing matches {query} {secret}"

    return agent


class ChatCompletions:
    """The OpenAI chat completions endpoint, scripted: ``search`` with the
    same arguments ``loops`` times, then ``final_answer``."""

    def __init__(self, loops: int, secret: str = "") -> None:
        self.loops = loops
        self.secret = secret
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.calls <= self.loops:
            name, args = "search", {"q": f"rooms {self.secret}"}
        else:
            name, args = "final_answer", {"answer": f"none free {self.secret}"}
        call = {
            "id": f"call{self.calls}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)},
        }
        return httpx.Response(
            200,
            json={
                "id": f"c{self.calls}",
                "object": "chat.completion",
                "created": 0,
                "model": "gpt-scripted",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "tool_calls",
                        "message": {"role": "assistant", "content": None, "tool_calls": [call]},
                    }
                ],
                "usage": {
                    "prompt_tokens": 200 * self.calls,
                    "completion_tokens": 9,
                    "total_tokens": 200 * self.calls + 9,
                },
            },
        )


def smolagents_agent(provider: TracerProvider, *, loops: int, secret: str = "") -> Any:
    """A smolagents ToolCallingAgent over the scripted endpoint, traced by
    OpenInference's instrumentor into ``provider``. Returns (agent,
    instrumentor); the caller uninstruments."""
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor
    from smolagents import OpenAIServerModel, ToolCallingAgent, tool

    instrumentor = SmolagentsInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    model = OpenAIServerModel(
        "gpt-scripted",
        api_base="http://127.0.0.1:9/v1",  # never reached: the transport answers
        api_key="sk-offline",
        client_kwargs={"http_client": httpx.Client(transport=httpx.MockTransport(ChatCompletions(loops, secret)))},
    )

    @tool
    def search(q: str) -> str:
        """Search free rooms.

        Args:
            q: what to look for
        """
        return f"nothing matches {q} {secret}"

    agent = ToolCallingAgent(tools=[search], model=model, max_steps=loops + 2, verbosity_level=0, name="rooms")
    return agent, instrumentor
