"""A tool-calling fake chat model and small agents built on it, offline.

LangChain ships no fake chat model that supports ``bind_tools``
(``GenericFakeChatModel`` raises NotImplementedError in langchain-core 1.x),
so agents under test use this one: it answers from a script, one reply per
call, and reports usage and a finish reason the way provider models do.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult


def call(name: str, **args: Any) -> dict[str, Any]:
    """One scripted tool call."""
    return {"name": name, "args": args}


class ScriptedChatModel(BaseChatModel):
    """Replies in turn from ``script``: a list of tool-call lists (the model
    asks for those tools) or strings (a final answer). Past the end it keeps
    answering ``"done"``."""

    script: list[Any]
    model_name: str = "scripted-model"
    prompt_tokens: int | None = 100
    completion_tokens: int | None = 10
    finish_reason: str | None = None
    counter: Any = None

    def model_post_init(self, context: Any) -> None:
        self.counter = itertools.count()

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[getattr(t, "name", t) for t in tools], **kwargs)

    def _reply(self) -> AIMessage:
        n = next(self.counter)
        item = self.script[n] if n < len(self.script) else "done"
        usage = None
        if self.prompt_tokens is not None:
            usage = {
                "input_tokens": self.prompt_tokens,
                "output_tokens": self.completion_tokens or 0,
                "total_tokens": self.prompt_tokens + (self.completion_tokens or 0),
            }
        if isinstance(item, str):
            finish = self.finish_reason or "stop"
            return AIMessage(content=item, usage_metadata=usage, response_metadata={"finish_reason": finish})
        calls = [{"name": c["name"], "args": c["args"], "id": f"call_{n}_{i}"} for i, c in enumerate(item)]
        return AIMessage(
            content="", tool_calls=calls, usage_metadata=usage, response_metadata={"finish_reason": "tool_calls"}
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        message = self._reply()
        info = dict(message.response_metadata)
        return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._reply()
        text = message.content if isinstance(message.content, str) else ""
        pieces = [text[i : i + 4] for i in range(0, len(text), 4)] or [""]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            chunk = AIMessageChunk(
                content=piece,
                tool_call_chunks=[
                    {"name": c["name"], "args": __import__("json").dumps(c["args"]), "id": c["id"], "index": j}
                    for j, c in enumerate(message.tool_calls)
                ]
                if last
                else [],
                usage_metadata=message.usage_metadata if last else None,
                response_metadata=dict(message.response_metadata) if last else {},
            )
            yield ChatGenerationChunk(message=chunk, generation_info=dict(message.response_metadata) if last else None)
