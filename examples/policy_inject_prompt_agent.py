"""An inject_prompt policy nudges a looping LangChain agent out of its loop.
Offline: a stand-in chat model.

The stand-in keeps polling an order's status, as a real model does when a
tool's answer does not change. ``nudge-after-3-polls`` triggers at the third
poll; ``DunetraceMiddleware`` adds its message to the conversation before
the next model call, and the stand-in, reading it, answers instead of
polling again. The message never leaves the process: the shipped signal
names the policy and its action only.

    pip install 'dunetrace[langchain]'
    python -m dunetrace.examples.policy_inject_prompt_agent
"""

from __future__ import annotations

from typing import Any

from dunetrace import Dunetrace

EXTRA = "langchain"
#: `dunetrace demo` prints the lines main() returns.
SHOW_OUTPUT = True
AGENT_ID = "policy-inject-prompt-agent"
NUDGE = "The status will not change within this conversation. Stop polling and answer with what you know."


def stand_in_model() -> Any:
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class PollingStandIn(BaseChatModel):
        """Polls for ever, unless the conversation tells it to stop."""

        @property
        def _llm_type(self) -> str:
            return "polling-stand-in"

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self.bind(tools=[getattr(t, "name", t) for t in tools], **kwargs)

        def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
            polls = sum(isinstance(m, ToolMessage) for m in messages)
            nudged = any(isinstance(m, HumanMessage) and "Stop polling" in str(m.content) for m in messages)
            usage = {"input_tokens": 150 + 40 * polls, "output_tokens": 15, "total_tokens": 165 + 40 * polls}
            if nudged or polls >= 20:
                reply = AIMessage(
                    content=f"Order A-1042 is still processing (checked {polls} times).",
                    usage_metadata=usage,
                    response_metadata={"finish_reason": "stop"},
                )
            else:
                call = {"name": "order_status", "args": {"order_id": "A-1042"}, "id": f"call_{polls}"}
                reply = AIMessage(
                    content="",
                    tool_calls=[call],
                    usage_metadata=usage,
                    response_metadata={"finish_reason": "tool_calls"},
                )
            return ChatResult(generations=[ChatGeneration(message=reply)])

    return PollingStandIn()


def main(dt: Dunetrace) -> list[str]:
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    from dunetrace.integrations.langchain import DunetraceCallbackHandler, DunetraceMiddleware

    @tool
    def order_status(order_id: str) -> str:
        """The shipping status of an order."""
        return f"Order {order_id}: processing at the warehouse."

    dt.add_policy("nudge-after-3-polls", when={"tool_calls": 3, "tool": "order_status"}, then={"inject_prompt": NUDGE})
    agent = create_agent(stand_in_model(), [order_status], middleware=[DunetraceMiddleware()])
    result = agent.invoke(
        {"messages": [("user", "Where is my order A-1042?")]},
        config={"callbacks": [DunetraceCallbackHandler(dt, agent_id=AGENT_ID)]},
    )
    return [str(result["messages"][-1].content)]


if __name__ == "__main__":
    client = Dunetrace()
    for line in main(client):
        print(line)
    client.shutdown()
