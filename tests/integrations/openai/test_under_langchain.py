"""A LangChain chat model over the wrapped OpenAI client is counted once.

The chat model here is the
smallest real one: a ``BaseChatModel`` whose ``_generate`` calls the wrapped
``client.chat.completions.create``, as ``ChatOpenAI`` does. LangChain runs
its callbacks around it; DunetraceCallbackHandler reports the model call
and marks its context (dunetrace.model_calls); the wrapped client stays
silent there. (LangChain's real ChatOpenAI: test_beside_frameworks.py.)
"""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("langchain_core")

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from dunetrace import Dunetrace
from dunetrace.integrations.langchain import DunetraceCallbackHandler
from tests.ingest_server import IngestServer

from .fakes import MODEL, FakeOpenAI, chat_completion, sync_client


class OpenAIChat(BaseChatModel):
    client: Any

    @property
    def _llm_type(self) -> str:
        return "openai-chat-test"

    def _generate(
        self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        reply = self.client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": str(m.content)} for m in messages]
        )
        text = reply.choices[0].message.content
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


@pytest.mark.parametrize("inside_user_run", [False, True])
def test_langchain_model_over_wrapped_client_is_counted_once(
    dt: Dunetrace, ingest: IngestServer, inside_user_run: bool
) -> None:
    client = dt.wrap_openai(sync_client(FakeOpenAI().reply(chat_completion("Paris."), chat_completion("Rome."))))
    model = OpenAIChat(client=client)
    handler = DunetraceCallbackHandler(dt, agent_id="lc-agent")
    config = {"callbacks": [handler]}
    if inside_user_run:
        with dt.run("outer-agent"):
            model.invoke([HumanMessage("Capital of France?")], config=config)
            model.invoke([HumanMessage("Capital of Italy?")], config=config)
    else:
        model.invoke([HumanMessage("Capital of France?")], config=config)
        model.invoke([HumanMessage("Capital of Italy?")], config=config)
    assert dt.flush(5)
    called = [e for e in ingest.events if e["event_type"] == "llm.called"]
    responded = [e for e in ingest.events if e["event_type"] == "llm.responded"]
    assert len(called) == 2 and len(responded) == 2
