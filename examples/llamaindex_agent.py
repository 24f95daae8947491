"""A LlamaIndex agent over a small document index, offline.

``instrument(dt, agent_id=...)`` is the whole integration: every
``FunctionAgent`` run below becomes a Dunetrace run with its LLM calls, its
tool calls and the retrieval behind the ``hotel_docs`` query-engine tool.
Nothing here talks to a model provider: ``OfflineLLM`` plays the model by
following a plan, and ``MockEmbedding`` stands in for an embedding model.

The second question makes the model keep asking the booking tool for the
same room, as a real model does when a tool's answer does not help it: the
collector sees the same tool three times in five calls and raises TOOL_LOOP.

    python -m dunetrace.examples.llamaindex_agent   # against DUNETRACE_ENDPOINT
    dunetrace demo                                   # with a local collector
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from dunetrace import Dunetrace

EXTRA = "llamaindex"
AGENT_ID = "llamaindex-hotel-agent"

SYSTEM_PROMPT = "You help guests of the Harbour Hotel. Use the tools; do not guess."

DOCUMENTS = [
    "Breakfast at the Harbour Hotel is served from 7:00 to 10:30 in the garden room.",
    "Check-out is at 11:00. Late check-out until 14:00 costs 30 EUR.",
    "The hotel has 40 rooms; sea-view rooms are on floors 3 and 4.",
]


def check_room(room_type: str, night: str) -> str:
    """Check whether a room type is free on a night (YYYY-MM-DD)."""
    return f"no {room_type} room is free on {night}"  # fully booked, whatever is asked


def build_llm(plan: Sequence[tuple[str, dict[str, Any]]], answer: str) -> Any:
    """A function-calling LLM that asks for the tools in ``plan``, in order,
    then gives ``answer``. It decides from the conversation alone (how many
    tool results it has seen), so it holds no state between runs."""
    from llama_index.core.base.llms.types import ChatMessage, ChatResponse, CompletionResponse, LLMMetadata
    from llama_index.core.llms.callbacks import llm_chat_callback, llm_completion_callback
    from llama_index.core.llms.function_calling import FunctionCallingLLM
    from llama_index.core.tools import ToolSelection

    class OfflineLLM(FunctionCallingLLM):
        @property
        def metadata(self) -> LLMMetadata:
            return LLMMetadata(is_function_calling_model=True, model_name="offline-planner-1")

        def _reply(self, messages: Sequence[ChatMessage]) -> ChatResponse:
            done = sum(1 for m in messages if m.role == "tool")
            usage = {"prompt_tokens": 60 + 25 * len(messages), "completion_tokens": 12}
            if done < len(plan):
                name, args = plan[done]
                call = ToolSelection(tool_id=f"call_{done}", tool_name=name, tool_kwargs=args)
                message = ChatMessage(role="assistant", content="", additional_kwargs={"tool_calls": [call]})
                return ChatResponse(message=message, raw={"usage": usage, "choices": [{"finish_reason": "tool_calls"}]})
            message = ChatMessage(role="assistant", content=answer)
            return ChatResponse(message=message, raw={"usage": usage, "choices": [{"finish_reason": "stop"}]})

        @llm_chat_callback()
        def chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
            return self._reply(messages)

        @llm_chat_callback()
        async def achat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatResponse:
            return self._reply(messages)

        def stream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
            raise NotImplementedError("run the agent with streaming=False")

        async def astream_chat(self, messages: Sequence[ChatMessage], **kwargs: Any) -> Any:
            raise NotImplementedError("run the agent with streaming=False")

        @llm_completion_callback()
        def complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            # The query engine's answer: the retrieved text, which its prompt
            # template puts between two dashed lines.
            parts = prompt.split("-" * 21)
            context = parts[1].strip() if len(parts) > 2 else prompt
            return CompletionResponse(text="The documents say: " + context)

        @llm_completion_callback()
        async def acomplete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> CompletionResponse:
            return self.complete(prompt, formatted)

        def stream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            raise NotImplementedError

        async def astream_complete(self, prompt: str, formatted: bool = False, **kwargs: Any) -> Any:
            raise NotImplementedError

        def _prepare_chat_with_tools(
            self,
            tools: Sequence[Any],
            user_msg: Any = None,
            chat_history: list[ChatMessage] | None = None,
            **kwargs: Any,
        ) -> dict[str, Any]:
            messages = list(chat_history or [])
            if user_msg is not None:
                messages.append(ChatMessage(role="user", content=str(user_msg)))
            return {"messages": messages}

        def get_tool_calls_from_response(
            self, response: ChatResponse, error_on_no_tool_call: bool = True, **kwargs: Any
        ) -> list[ToolSelection]:
            return list(response.message.additional_kwargs.get("tool_calls", []))

    return OfflineLLM()


async def ask(question: str, plan: Sequence[tuple[str, dict[str, Any]]], answer: str) -> str:
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.agent.workflow import FunctionAgent
    from llama_index.core.embeddings import MockEmbedding
    from llama_index.core.tools import FunctionTool, QueryEngineTool

    index = VectorStoreIndex.from_documents(
        [Document(text=t) for t in DOCUMENTS], embed_model=MockEmbedding(embed_dim=16)
    )
    docs = QueryEngineTool.from_defaults(
        index.as_query_engine(llm=build_llm([], ""), similarity_top_k=2),
        name="hotel_docs",
        description="Answers questions about the hotel from its documents.",
    )
    agent = FunctionAgent(
        tools=[docs, FunctionTool.from_defaults(check_room)],
        llm=build_llm(plan, answer),
        system_prompt=SYSTEM_PROMPT,
        streaming=False,
    )
    return str(await agent.run(question))


async def _both() -> list[str]:
    return [
        # A healthy run: one look in the documents, then the answer.
        await ask(
            "When is breakfast?",
            [("hotel_docs", {"input": "breakfast hours"})],
            "Breakfast is from 7:00 to 10:30 in the garden room.",
        ),
        # The loop: the same availability check four times.
        await ask(
            "Is a sea-view room free on 2026-12-24?",
            [("check_room", {"room_type": "sea-view", "night": "2026-12-24"})] * 4,
            "Sorry, no sea-view room is free that night.",
        ),
    ]


def main(dt: Dunetrace) -> list[str]:
    from dunetrace.integrations.llamaindex import instrument, uninstrument

    instrument(dt, agent_id=AGENT_ID)
    try:
        return asyncio.run(_both())
    finally:
        uninstrument()


if __name__ == "__main__":
    client = Dunetrace()
    for line in main(client):
        print(line)
    client.shutdown()
