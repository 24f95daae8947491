"""A two-agent CrewAI crew, offline, reported to Dunetrace.

A researcher searches three times for nearly the same thing before
answering (a TOOL_LOOP-shaped run: the same tool 3 times in a row; CrewAI
itself refuses a repeat with identical arguments), then a writer turns
the notes into a sentence. The model is a scripted fake, so nothing leaves
the machine but Dunetrace's own events::

    python -m dunetrace.examples.crewai_agent

Needs ``pip install 'dunetrace[crewai]'``.
"""

from __future__ import annotations

import os

# Keep CrewAI offline: no telemetry, no OpenTelemetry export, no first-run
# trace prompt. Set before crewai is imported.
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
os.environ.setdefault("CREWAI_TESTING", "true")

from typing import Any

from dunetrace import Dunetrace

EXTRA = "crewai"
AGENT_ID = "research-crew"

RESEARCHER_SCRIPT = [
    'Thought: I should look this up.\nAction: search\nAction Input: {"query": "tallest mountain"}',
    'Thought: Let me check again.\nAction: search\nAction Input: {"query": "tallest mountain on earth"}',
    'Thought: One more time to be sure.\nAction: search\nAction Input: {"query": "highest mountain"}',
    "Thought: I know the answer.\nFinal Answer: Mount Everest, 8849 m.",
]
WRITER_SCRIPT = ["Thought: Easy.\nFinal Answer: The tallest mountain on Earth is Mount Everest (8849 m)."]


def build_crew() -> Any:
    """The crew: two agents, two sequential tasks, one search tool."""
    from crewai import Agent, Crew, Process, Task
    from crewai.events.types.llm_events import LLMCallType
    from crewai.llms.base_llm import BaseLLM, llm_call_context
    from crewai.tools import tool

    class ScriptedLLM(BaseLLM):
        """Answers from a script, one reply per call. CrewAI's LLM events
        are emitted by the LLM class itself, so a custom LLM emits them."""

        script: list[str]
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
                self._emit_call_started_event(
                    messages=messages, tools=tools, from_task=from_task, from_agent=from_agent
                )
                reply = self.script[min(self.calls, len(self.script) - 1)]
                self.calls += 1
                prompt_tokens = self.get_input_tokens_count(messages)
                self._emit_call_completed_event(
                    response=reply,
                    call_type=LLMCallType.LLM_CALL,
                    from_task=from_task,
                    from_agent=from_agent,
                    messages=messages,
                    usage={
                        "prompt_tokens": prompt_tokens,
                        "completion_tokens": len(reply) // 4,
                        "total_tokens": prompt_tokens + len(reply) // 4,
                    },
                    finish_reason="stop",
                )
                return reply

        def get_input_tokens_count(self, messages: Any, tools: Any = None, response_model: Any = None) -> int:
            text = messages if isinstance(messages, str) else "".join(str(m.get("content", "")) for m in messages)
            return (len(text) + 3) // 4

        def supports_function_calling(self) -> bool:
            return False  # ReAct text ("Action: ...") rather than native tool calls

    @tool("search")
    def search(query: str) -> str:
        """Look something up."""
        return "Mount Everest is 8849 m high."

    researcher = Agent(
        role="Researcher",
        goal="Find facts",
        backstory="Careful and thorough.",
        llm=ScriptedLLM(model="scripted-researcher", script=RESEARCHER_SCRIPT),
        tools=[search],
        cache=False,  # every search really runs, as a loop would
    )
    writer = Agent(
        role="Writer",
        goal="Write one clear sentence",
        backstory="Concise.",
        llm=ScriptedLLM(model="scripted-writer", script=WRITER_SCRIPT),
    )
    return Crew(
        agents=[researcher, writer],
        tasks=[
            Task(
                name="research", description="What is the tallest {thing}?", expected_output="A fact", agent=researcher
            ),
            Task(name="write", description="Write it up.", expected_output="One sentence", agent=writer),
        ],
        process=Process.sequential,
    )


def main(dt: Dunetrace) -> object:
    """Run the crew once with Dunetrace listening; returns the crew output."""
    from crewai.events import crewai_event_bus

    from dunetrace.integrations.crewai import instrument

    instrument(dt, agent_id=AGENT_ID)
    result = build_crew().kickoff(inputs={"thing": "mountain"})
    # kickoff() can return before CrewAI's event handlers have all run.
    crewai_event_bus.flush()
    return result


if __name__ == "__main__":
    client = Dunetrace()
    print(main(client))
    client.shutdown()
