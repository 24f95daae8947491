"""A tool-calling fake chat model and small agents built on it, offline.

LangChain ships no fake chat model that supports ``bind_tools``
(``GenericFakeChatModel`` raises NotImplementedError in langchain-core 1.x),
so agents under test use this one: it answers from a script, one reply per
call, and reports usage and a finish reason the way provider models do.
"""

from __future__ import annotations

import json
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
    """Replies from ``script``: a list of tool-call lists (the model asks for
    those tools) or strings (a final answer). The reply is chosen by how many
    model turns the conversation already holds, so one model serves any
    number of concurrent conversations. Past the end it answers ``"done"``."""

    script: list[Any]
    model_name: str = "scripted-model"
    prompt_tokens: int | None = 100
    completion_tokens: int | None = 10
    finish_reason: str | None = None

    @property
    def _llm_type(self) -> str:
        return "scripted"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> Any:
        return self.bind(tools=[getattr(t, "name", t) for t in tools], **kwargs)

    def _reply(self, messages: list[BaseMessage]) -> AIMessage:
        n = sum(1 for m in messages if getattr(m, "type", None) == "ai")
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
        message = self._reply(messages)
        info = dict(message.response_metadata)
        return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        message = self._reply(messages)
        text = message.content if isinstance(message.content, str) else ""
        pieces = [text[i : i + 4] for i in range(0, len(text), 4)] or [""]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            chunk = AIMessageChunk(
                content=piece,
                tool_call_chunks=[
                    {"name": c["name"], "args": json.dumps(c["args"]), "id": c["id"], "index": j}
                    for j, c in enumerate(message.tool_calls)
                ]
                if last
                else [],
                usage_metadata=message.usage_metadata if last else None,
                response_metadata=dict(message.response_metadata) if last else {},
            )
            yield ChatGenerationChunk(message=chunk, generation_info=dict(message.response_metadata) if last else None)


# -- agents -------------------------------------------------------------------

from langchain_core.tools import tool  # noqa: E402


@tool
def search(query: str) -> str:
    """Search the web."""
    return f"results for {query}"


@tool
def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression."""
    return "42"


def agent(
    script: list[Any], tools: list[Any] | None = None, *, system_prompt: str = "You are helpful.", **model: Any
) -> Any:
    """A ``langchain.agents.create_agent`` agent on a scripted model."""
    from langchain.agents import create_agent

    return create_agent(
        ScriptedChatModel(script=script, **model), tools or [search, calculator], system_prompt=system_prompt
    )


def state_graph(
    script: list[Any], tools: list[Any] | None = None, *, handle_tool_errors: Any = None, **model: Any
) -> Any:
    """The same loop built by hand: a LangGraph ``StateGraph`` with a model
    node, a ``ToolNode`` and ``tools_condition``."""
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    tools = tools or [search, calculator]
    bound = ScriptedChatModel(script=script, **model).bind_tools(tools)

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    node = ToolNode(tools) if handle_tool_errors is None else ToolNode(tools, handle_tool_errors=handle_tool_errors)
    graph.add_node("tools", node)
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "model")
    return graph.compile()


def question(text: str = "What is the weather in Paris?") -> dict[str, Any]:
    return {"messages": [("user", text)]}
