"""Fakes that fail the way real providers and tools do: a scripted chat
model that raises a real ``openai`` API error for its first calls, and a
tool that raises for its first calls. Offline: the errors are built on an
``httpx`` response, never sent."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx
import openai
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatResult
from langchain_core.tools import StructuredTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from .fakes import ScriptedChatModel


def rate_limit_error() -> openai.RateLimitError:
    request = httpx.Request("POST", "https://api.openai.com/v1/chat/completions")
    return openai.RateLimitError("Rate limit reached", response=httpx.Response(429, request=request), body=None)


def server_error() -> openai.InternalServerError:
    request = httpx.Request("POST", "https://api.openai.com/v1/chat/completions")
    return openai.InternalServerError("Server error", response=httpx.Response(500, request=request), body=None)


class FlakyChatModel(ScriptedChatModel):
    """Raises ``make_error()`` for its first ``fails`` calls, then answers
    from its script. ``calls`` counts every call, failed or not."""

    fails: int = 1
    calls: list[int] = Field(default_factory=list)
    error: str = "rate_limit"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self.calls.append(1)
        if len(self.calls) <= self.fails:
            raise rate_limit_error() if self.error == "rate_limit" else server_error()
        return super()._generate(messages, stop, run_manager, **kwargs)


def flaky_model(fails: int, script: list[Any], **fields: Any) -> FlakyChatModel:
    return FlakyChatModel(script=script, fails=fails, calls=[], **fields)


class OpenAIToolsChatModel(ScriptedChatModel):
    """Binds tools the way provider chat models do (as OpenAI tool dicts),
    so ``with_structured_output`` schemas are bound by name."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


class Unreliable(Exception):
    """What the flaky tool raises."""


def flaky_tool(fails: int, name: str = "fetch") -> StructuredTool:
    """A tool that raises ``Unreliable`` for its first ``fails`` calls."""
    calls: list[int] = []

    def fetch(url: str) -> str:
        """Fetch a page."""
        calls.append(1)
        if len(calls) <= fails:
            raise Unreliable("upstream timed out")
        return "page text"

    return StructuredTool.from_function(fetch, name=name)
