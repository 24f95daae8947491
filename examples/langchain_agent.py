"""A LangChain agent stuck polling a tool, reported to Dunetrace. Offline.

The agent answers "where is my order?". Its tool keeps saying the order is
being processed, and the model keeps asking again: five calls of the same
tool before it gives up and answers. Dunetrace's TOOL_LOOP detector (same
tool three times within five calls) flags exactly this kind of run.

The chat model is a stand-in written for this example, so it runs without a
network or an API key; swap in ``ChatOpenAI(...)`` or any tool-calling chat
model and the rest stays the same.

    pip install 'dunetrace[langchain]'
    python -m dunetrace.examples.langchain_agent
"""

from __future__ import annotations

from typing import Any

from dunetrace import Dunetrace

EXTRA = "langchain"
AGENT_ID = "order-status-agent"

SYSTEM_PROMPT = "You help customers track their orders. Use the tools; never guess a status."
QUESTION = "Where is my order A-1042? It was due yesterday."

#: How many times the stand-in model calls the tool before answering.
POLLS = 5


def build_agent(polls: int = POLLS) -> Any:
    """A ``create_agent`` agent whose model polls ``check_order_status``
    ``polls`` times, then answers."""
    from langchain.agents import create_agent
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool

    @tool
    def check_order_status(order_id: str) -> str:
        """Look up the shipping status of an order."""
        return f"Order {order_id}: processing at the warehouse."

    class PollingChatModel(BaseChatModel):
        """Stands in for a real model: reads the conversation and asks for
        the status again until it has asked ``polls`` times."""

        polls: int = POLLS

        @property
        def _llm_type(self) -> str:
            return "polling-stand-in"

        @property
        def _identifying_params(self) -> dict[str, Any]:
            return {"model_name": "polling-stand-in"}

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self.bind(tools=[getattr(t, "name", t) for t in tools], **kwargs)

        def _generate(
            self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
        ) -> ChatResult:
            asked = sum(isinstance(m, ToolMessage) for m in messages)
            usage = {"input_tokens": 120 + 40 * asked, "output_tokens": 18, "total_tokens": 138 + 40 * asked}
            if asked < self.polls:
                call = {"name": "check_order_status", "args": {"order_id": "A-1042"}, "id": f"call_{asked}"}
                reply = AIMessage(
                    content="",
                    tool_calls=[call],
                    usage_metadata=usage,
                    response_metadata={"finish_reason": "tool_calls"},
                )
            else:
                reply = AIMessage(
                    content="Your order A-1042 is still being processed at the warehouse.",
                    usage_metadata=usage,
                    response_metadata={"finish_reason": "stop"},
                )
            generation = ChatGeneration(message=reply, generation_info=dict(reply.response_metadata))
            return ChatResult(generations=[generation])

    return create_agent(PollingChatModel(polls=polls), [check_order_status], system_prompt=SYSTEM_PROMPT)


def main(dt: Dunetrace) -> object:
    """Run the agent once, reported to ``dt``; returns its answer."""
    from dunetrace.integrations.langchain import DunetraceCallbackHandler

    agent = build_agent()
    handler = DunetraceCallbackHandler(dt, agent_id=AGENT_ID)
    result = agent.invoke({"messages": [("user", QUESTION)]}, config={"callbacks": [handler]})
    return result["messages"][-1].content


if __name__ == "__main__":
    client = Dunetrace()
    print(main(client))
    client.shutdown()
