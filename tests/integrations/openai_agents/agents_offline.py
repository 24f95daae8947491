"""OpenAI Agents SDK agents on a scripted OpenAI API (httpx MockTransport):
the Responses API (the SDK's default model), whole or streamed. The
scripts record what each request asked: its model and its input."""

from __future__ import annotations

import itertools
import json
from typing import Any

import httpx

_scripts = itertools.count(1)


class ScriptedResponses:
    """``POST /v1/responses``: ``search`` with the same arguments ``loops``
    times, then an answer; ``max_tokens_at`` answers incomplete there."""

    def __init__(
        self, loops: int, secret: str = "", answer: str = "none free", tool: str = "search", arguments: Any = None
    ) -> None:
        self.loops = loops
        self.arguments = {"q": f"rooms {secret}"} if arguments is None else arguments
        self.secret = secret
        self.answer = answer
        self.tool = tool
        self.calls = 0
        # Call ids unique across scripts: the SDK refuses one reused in a run.
        self.prefix = f"s{next(_scripts)}"
        #: Per request: the model it named and its input items.
        self.models: list[str] = []
        self.inputs: list[Any] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        asked = json.loads(request.content)
        self.models.append(asked.get("model"))
        self.inputs.append(asked.get("input"))
        if self.calls <= self.loops:
            output = [
                {
                    "type": "function_call",
                    "id": f"fc{self.prefix}-{self.calls}",
                    "call_id": f"call{self.prefix}-{self.calls}",
                    "name": self.tool,
                    "arguments": json.dumps(self.arguments),
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
                "model": asked.get("model") or "gpt-scripted",
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


class StreamingResponses(ScriptedResponses):
    """The same script as server-sent events, each response whole in one
    ``response.completed`` event (for ``Runner.run_streamed``)."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = super().__call__(request).json()
        events = [
            {
                "type": "response.created",
                "sequence_number": 0,
                "response": {**body, "status": "in_progress", "output": []},
            },
            {"type": "response.completed", "sequence_number": 1, "response": body},
        ]
        text = "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events)
        return httpx.Response(200, text=text, headers={"content-type": "text/event-stream"})


def models_by_name(models: dict[str, Any]) -> Any:
    """A ``ModelProvider`` for ``RunConfig(model_provider=...)``: the models
    it was given, by name (``.asked`` lists the names asked for); any other
    name is an error, as an unknown model is for a real provider."""
    from agents.models.interface import ModelProvider

    class ModelsByName(ModelProvider):
        def __init__(self) -> None:
            self.asked: list[str] = []

        def get_model(self, model_name: str | None) -> Any:
            self.asked.append(str(model_name))
            if model_name not in models:
                raise KeyError(f"no model named {model_name!r}")
            return models[model_name]

    return ModelsByName()


def responses_model(script: Any, name: str = "gpt-scripted") -> Any:
    from agents import OpenAIResponsesModel
    from openai import AsyncOpenAI

    client = AsyncOpenAI(
        api_key="sk-offline",
        base_url="http://127.0.0.1:9/v1",  # never reached: the transport answers
        http_client=httpx.AsyncClient(transport=httpx.MockTransport(script)),
    )
    return OpenAIResponsesModel(model=name, openai_client=client)


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
