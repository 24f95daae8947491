"""Offline crews for the CrewAI tests: scripted LLMs (the custom ``BaseLLM``
route, and ``crewai.LLM``'s OpenAI provider over ``httpx.MockTransport``)
and small tools. Imported only by tests that need CrewAI."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx
from crewai import LLM, Agent, Crew, Process, Task
from crewai.events.types.llm_events import LLMCallType
from crewai.llms.base_llm import BaseLLM, llm_call_context
from crewai.tools import tool
from openai import OpenAI


class ScriptedLLM(BaseLLM):
    """Replies from ``script``; a reply that is an Exception is raised. Emits
    CrewAI's LLM events itself, as a custom LLM must."""

    script: list[Any]
    calls: int = 0

    def call(
        self,
        messages: Any,
        tools: Any = None,
        callbacks: Any = None,
        available_functions: Any = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> str:
        with llm_call_context():
            self._emit_call_started_event(messages=messages, tools=tools, from_task=from_task, from_agent=from_agent)
            reply = self.script[min(self.calls, len(self.script) - 1)]
            self.calls += 1
            if isinstance(reply, BaseException):
                # As CrewAI's own providers do: the failure is reported from
                # the except block that caught the provider's exception.
                try:
                    raise reply
                except Exception:
                    self._emit_call_failed_event(error=str(reply), from_task=from_task, from_agent=from_agent)
                    raise
            prompt_tokens = 100 * self.calls
            self._emit_call_completed_event(
                response=reply,
                call_type=LLMCallType.LLM_CALL,
                from_task=from_task,
                from_agent=from_agent,
                messages=messages,
                usage={"prompt_tokens": prompt_tokens, "completion_tokens": 10 + self.calls, "total_tokens": 0},
                finish_reason="stop",
            )
            return reply

    def get_input_tokens_count(self, messages: Any, tools: Any = None, response_model: Any = None) -> int:
        return 100

    def supports_function_calling(self) -> bool:
        return False


def react(tool: str, args: dict[str, Any]) -> str:
    return f"Thought: use the tool\nAction: {tool}\nAction Input: {json.dumps(args)}"


def final(text: str) -> str:
    return f"Thought: done\nFinal Answer: {text}"


@tool("search")
def search(query: str) -> str:
    """Look something up."""
    return f"found: {query}"


@tool("lookup")
def lookup(query: str) -> str:
    """Look something up elsewhere."""
    return f"looked up: {query}"


@tool("broken")
def broken(query: str) -> str:
    """A tool that always fails."""
    raise RuntimeError(f"broken tool failed on {query}")


def two_agent_crew(
    researcher_script: list[Any],
    writer_script: list[Any] | None = None,
    *,
    tools: list[Any] | None = None,
    topic_task: str = "Research {topic}",
    goal: str = "Find facts",
    backstory: str = "Careful.",
    role: str = "Researcher",
    **crew_options: Any,
) -> Crew:
    researcher = Agent(
        role=role,
        goal=goal,
        backstory=backstory,
        llm=ScriptedLLM(model="scripted-1", script=researcher_script),
        tools=[search] if tools is None else tools,
        cache=False,
        max_iter=8,
    )
    writer = Agent(
        role="Senior Writer",
        goal="Write",
        backstory="Concise.",
        llm=ScriptedLLM(model="scripted-2", script=writer_script or [final("written")]),
    )
    return Crew(
        agents=[researcher, writer],
        tasks=[
            Task(name="research", description=topic_task, expected_output="facts", agent=researcher),
            Task(name="write", description="Write it up.", expected_output="text", agent=writer),
        ],
        process=Process.sequential,
        **crew_options,
    )


def openai_llm(replies: list[dict[str, Any]]) -> tuple[LLM, list[dict[str, Any]]]:
    """``crewai.LLM`` (OpenAI provider) whose HTTP client answers from
    ``replies`` (chat-completion ``message`` dicts plus ``finish_reason`` and
    ``usage``) through ``httpx.MockTransport``: no network."""
    sent: list[dict[str, Any]] = []
    lock = threading.Lock()

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/input_tokens"):  # CrewAI's pre-flight token count
            return httpx.Response(200, json={"object": "response.input_tokens", "input_tokens": 50})
        with lock:
            body = json.loads(request.content)
            reply = replies[min(len(sent), len(replies) - 1)]
            sent.append(body)
        return httpx.Response(
            200,
            json={
                "id": f"chatcmpl-{len(sent)}",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-4o-mini",
                "choices": [{"index": 0, "message": reply["message"], "finish_reason": reply["finish_reason"]}],
                "usage": reply["usage"],
            },
        )

    llm = LLM(model="gpt-4o-mini", api_key="sk-fake")
    llm._client = OpenAI(api_key="sk-fake", http_client=httpx.Client(transport=httpx.MockTransport(handle)))
    return llm, sent


def tool_call_reply(n: int, name: str, args: dict[str, Any]) -> dict[str, Any]:
    return {
        "message": {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": f"call_{n}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            ],
        },
        "finish_reason": "tool_calls",
        "usage": {"prompt_tokens": 200 * n, "completion_tokens": 9, "total_tokens": 200 * n + 9},
    }


def answer_reply(text: str, prompt_tokens: int) -> dict[str, Any]:
    return {
        "message": {"role": "assistant", "content": text},
        "finish_reason": "stop",
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": 5, "total_tokens": prompt_tokens + 5},
    }
