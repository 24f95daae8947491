"""Offline stand-ins for a model provider: a scripted function-calling LLM.

Each script item is one LLM answer: ``Call("tool", {"arg": 1})`` asks for a
tool (a list of them, for several at once), a string answers, an exception
is raised. Answers carry usage and a
finish reason in ``raw`` the way the OpenAI integration does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Generator, Sequence
from dataclasses import dataclass, field
from typing import Any

from llama_index.core.base.llms.types import (
    ChatMessage,
    ChatResponse,
    CompletionResponse,
    LLMMetadata,
)
from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
from llama_index.core.llms.function_calling import FunctionCallingLLM
from llama_index.core.tools import ToolSelection


@dataclass
class Call:
    tool: str
    args: dict[str, Any] = field(default_factory=dict)


class ScriptedLLM(FunctionCallingLLM):
    """A function-calling LLM that plays a script; thread-safe, so one
    instance may serve concurrent runs when every run plays the same script."""

    model: str = "scripted-1"
    repeat: bool = False
    _script: list[Any] = PrivateAttr(default_factory=list)
    _position: int = PrivateAttr(default=0)
    _lock: Any = PrivateAttr(default_factory=threading.Lock)
    _seen: list[Any] = PrivateAttr(default_factory=list)

    def __init__(self, script: Sequence[Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._script = list(script)

    @classmethod
    def class_name(cls) -> str:
        return "ScriptedLLM"

    @property
    def metadata(self) -> LLMMetadata:
        return LLMMetadata(is_function_calling_model=True, model_name=self.model)

    def observe(self, hook: Any) -> None:
        """Call ``hook()`` inside every LLM call (to look at the run then)."""
        self._seen.append(hook)

    def _answer(self, messages: Sequence[ChatMessage]) -> ChatResponse:
        for hook in self._seen:
            hook()
        with self._lock:
            if self._position >= len(self._script):
                if not self.repeat:
                    raise AssertionError("ScriptedLLM ran out of script")
                self._position = 0
            item = self._script[self._position]
            self._position += 1
        if isinstance(item, BaseException):
            raise item
        prompt_tokens = 20 * len(messages)
        if isinstance(item, Call):
            item = [item]
        if isinstance(item, list):  # one or more tool calls in one answer
            message = ChatMessage(
                role="assistant",
                content="",
                additional_kwargs={
                    "tool_calls": [
                        ToolSelection(tool_id=f"call-{self._position}-{i}", tool_name=call.tool, tool_kwargs=call.args)
                        for i, call in enumerate(item)
                    ]
                },
            )
            raw = {
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 7},
                "choices": [{"finish_reason": "tool_calls"}],
            }
            return ChatResponse(message=message, raw=raw)
        text = str(item)
        raw = {
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split())},
            "choices": [{"finish_reason": "stop"}],
        }
        return ChatResponse(message=ChatMessage(role="assistant", content=text), raw=raw)

    @llm_chat_callback()
    def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._answer(messages)

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        return self._answer(messages)

    @llm_chat_callback()
    def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Generator[ChatResponse, None, None]:
        answer = self._answer(messages)

        def chunks() -> Generator[ChatResponse, None, None]:
            yield from _chunks(answer)

        return chunks()

    @llm_chat_callback()
    async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> AsyncGenerator[ChatResponse, None]:
        answer = self._answer(messages)

        async def chunks() -> AsyncGenerator[ChatResponse, None]:
            for chunk in _chunks(answer):
                yield chunk

        return chunks()

    @llm_completion_callback()
    def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        answer = self._answer([ChatMessage(role="user", content=prompt)])
        return CompletionResponse(text=answer.message.content or "", raw=answer.raw)

    @llm_completion_callback()
    async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
        return self.complete(prompt, formatted=formatted, **kwargs)

    @llm_completion_callback()
    def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        response = self.complete(prompt)

        def gen() -> Generator[CompletionResponse, None, None]:
            yield from _completion_chunks(response)

        return gen()

    @llm_completion_callback()
    async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
        response = self.complete(prompt)

        async def gen() -> AsyncGenerator[CompletionResponse, None]:
            for chunk in _completion_chunks(response):
                yield chunk

        return gen()

    def _prepare_chat_with_tools(
        self,
        tools: Sequence[Any],
        user_msg: str | ChatMessage | None = None,
        chat_history: list[ChatMessage] | None = None,
        verbose: bool = False,
        allow_parallel_tool_calls: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        messages = list(chat_history or [])
        if isinstance(user_msg, str):
            messages.append(ChatMessage(role="user", content=user_msg))
        elif user_msg is not None:
            messages.append(user_msg)
        return {"messages": messages}

    def get_tool_calls_from_response(
        self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
    ) -> list[ToolSelection]:
        return list(response.message.additional_kwargs.get("tool_calls", []))


def _completion_chunks(response: CompletionResponse) -> Generator[CompletionResponse, None, None]:
    # Two chunks, usage and finish reason with the last, as providers stream.
    text = response.text
    half = text[: len(text) // 2]
    yield CompletionResponse(text=half, delta=half)
    yield CompletionResponse(text=text, delta=text[len(half) :], raw=response.raw)


def _chunks(answer: ChatResponse) -> Generator[ChatResponse, None, None]:
    # Streamed the way providers do: partial content first, usage and the
    # finish reason with the last chunk.
    text = answer.message.content or ""
    half = text[: len(text) // 2]
    yield ChatResponse(message=ChatMessage(role="assistant", content=half), delta=half)
    yield ChatResponse(message=answer.message, delta=text[len(half) :], raw=answer.raw)


class StallingLLM(ScriptedLLM):
    """Plays its script, then stalls in the next call until cancelled;
    ``stalled`` is set once it does, so a test can cancel it mid-call."""

    _stalled: Any = PrivateAttr(default=None)

    @property
    def stalled(self) -> asyncio.Event:
        if self._stalled is None:
            self._stalled = asyncio.Event()
        return self._stalled  # type: ignore[no-any-return]

    @llm_chat_callback()
    async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
        if self._position < len(self._script):
            return self._answer(messages)
        self.stalled.set()
        await asyncio.sleep(30)
        raise AssertionError("StallingLLM was not cancelled")
