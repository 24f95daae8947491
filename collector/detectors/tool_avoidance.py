"""TOOL_AVOIDANCE: the agent answered without using any of its tools.

Fires when the run ended with an answer (``run.completed`` with exit reason
``final_answer`` or ``completed``), ``run.started`` listed tools, none was
called, and the agent made at least ``min_llm_calls`` (2) LLM calls (a
one-call run had no real chance to decide).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import plural

NAME = "TOOL_AVOIDANCE"
SEVERITY = "MEDIUM"
DEFAULTS = {"min_llm_calls": 2}


def explain(e: Mapping[str, Any]) -> dict[str, str]:
    names = ", ".join(f"'{t}'" for t in e["tools_available"][:10])
    return {
        "what": (
            f"The agent answered after {plural(e['llm_calls'], 'LLM call')} without calling any of its "
            f"{plural(e['tools_available_count'], 'tool')} ({names})."
        ),
        "why": (
            "An agent that has tools but answers from the model alone may be guessing: the answer is not "
            "grounded in the data the tools would have fetched, and it can be confidently wrong. Some "
            "questions really need no tool, so look at how often this happens rather than at one run."
        ),
        "try": (
            "Make the tool descriptions say clearly when each tool must be used, tell the agent in its "
            "instructions to check facts with its tools before answering, or force a tool call on the first "
            "turn (tool_choice). If this agent often answers without tools by design, raise TOOL_AVOIDANCE's "
            "min_llm_calls or turn it off for the agent in detectors.yml."
        ),
    }
