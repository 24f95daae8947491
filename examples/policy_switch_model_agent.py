"""A switch_model policy moves a LangChain agent to a cheaper model mid-run.
Offline: two stand-in chat models.

``cheaper-after-3-tools`` triggers once the run has made three tool calls;
``DunetraceMiddleware`` in ``create_agent(middleware=[...])`` then calls
the model the policy names for every later model call of that run. Here
``models=`` maps that name to a stand-in; by default the middleware builds
it with ``langchain.chat_models.init_chat_model(name)``.

    pip install 'dunetrace[langchain]'
    python -m dunetrace.examples.policy_switch_model_agent
"""

from __future__ import annotations

from typing import Any

from dunetrace import Dunetrace

EXTRA = "langchain"
#: `dunetrace demo` prints the lines main() returns.
SHOW_OUTPUT = True
AGENT_ID = "policy-switch-model-agent"


def stand_in_model(name: str, lookups: int) -> Any:
    """A tool-calling stand-in that looks up stock ``lookups`` times, then answers."""
    from langchain_core.language_models.chat_models import BaseChatModel
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    class StandIn(BaseChatModel):
        model_name: str = name

        @property
        def _llm_type(self) -> str:
            return "stand-in"

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self.bind(tools=[getattr(t, "name", t) for t in tools], **kwargs)

        def _generate(self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any) -> ChatResult:
            done = sum(isinstance(m, ToolMessage) for m in messages)
            usage = {"input_tokens": 200 + 50 * done, "output_tokens": 20, "total_tokens": 220 + 50 * done}
            if done < lookups:
                call = {"name": "stock_level", "args": {"sku": f"SKU-{done}"}, "id": f"call_{done}"}
                reply = AIMessage(
                    content="",
                    tool_calls=[call],
                    usage_metadata=usage,
                    response_metadata={"finish_reason": "tool_calls", "model_name": name},
                )
            else:
                reply = AIMessage(
                    content=f"All {done} items are in stock (answered by {name}).",
                    usage_metadata=usage,
                    response_metadata={"finish_reason": "stop", "model_name": name},
                )
            return ChatResult(generations=[ChatGeneration(message=reply)])

    return StandIn()


def main(dt: Dunetrace) -> list[str]:
    from langchain.agents import create_agent
    from langchain_core.tools import tool

    from dunetrace.integrations.langchain import DunetraceCallbackHandler, DunetraceMiddleware

    @tool
    def stock_level(sku: str) -> str:
        """How many of an item are in stock."""
        return f"{sku}: 12 in stock"

    dt.add_policy("cheaper-after-3-tools", when={"tool_calls": 3}, then={"switch_model": "small-model"})
    agent = create_agent(
        stand_in_model("large-model", lookups=5),
        [stock_level],
        middleware=[DunetraceMiddleware(models={"small-model": stand_in_model("small-model", lookups=5)})],
    )
    result = agent.invoke(
        {"messages": [("user", "Are SKU-0 to SKU-4 in stock?")]},
        config={"callbacks": [DunetraceCallbackHandler(dt, agent_id=AGENT_ID)]},
    )
    return [str(result["messages"][-1].content)]


if __name__ == "__main__":
    client = Dunetrace()
    for line in main(client):
        print(line)
    client.shutdown()
