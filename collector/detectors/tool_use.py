"""Explanations of the tool-use detectors added with the core library:
OVERSIZED_TOOL_ARGUMENTS, SCATTERSHOT_TOOL_USE, UNREAD_TOOL_ERROR and
PREMATURE_TERMINATION (their conditions are in :mod:`dunetrace.detectors`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._run import plural

__all__ = ["EXPLAIN"]


def oversized(e: Mapping[str, Any]) -> dict[str, str]:
    return {
        "what": (
            f"The agent called the tool '{e['tool']}' at step {e['step']} with arguments "
            f"{e['args_chars']} characters long, over the {e['max_chars']}-character limit."
        ),
        "why": (
            "Arguments this large usually mean the model pasted a whole document, a long history or a "
            "runaway generation into a tool call. It costs output tokens, may exceed what the tool accepts, "
            "and often hides a prompt that told the model to pass data it should have referenced."
        ),
        "try": (
            f"Look at what '{e['tool']}' is asked to take: pass identifiers or short queries instead of full "
            "text, and validate argument size in the tool. If large arguments are normal here, raise "
            "OVERSIZED_TOOL_ARGUMENTS' max_chars in detectors.yml."
        ),
    }


def scattershot(e: Mapping[str, Any]) -> dict[str, str]:
    names = ", ".join(f"'{t}'" for t in e["tools"][:10])
    return {
        "what": (
            f"The agent used {e['distinct_tools']} different tools within {e['window']} consecutive tool "
            f"calls (up to step {e['step']}): {names}."
        ),
        "why": (
            "Trying tool after tool without repeating any usually means the agent has no plan for the task "
            "and is probing for something that works. Each try costs a model turn, and tools with side "
            "effects may be called for no reason."
        ),
        "try": (
            "Make each tool's description say when to use it, narrow the tools offered for this task, or "
            "ask the agent for a short plan before acting. If this agent is a broad router by design, "
            "raise SCATTERSHOT_TOOL_USE's min_distinct or turn it off for it."
        ),
    }


def unread(e: Mapping[str, Any]) -> dict[str, str]:
    return {
        "what": (
            f"The tool '{e['failed_tool']}' failed at step {e['failed_step']}, and the next tool call "
            f"started at step {e['next_tool_step']} without a model call in between."
        ),
        "why": (
            "The error never went back to the model, so nothing decided what to do about it: the run went "
            "on as if the tool had worked, and later steps may build on a result that does not exist."
        ),
        "try": (
            "Return tool errors to the model as a tool message, or stop the plan when a step fails. If a "
            "fixed pipeline of tools runs without the model by design, turn UNREAD_TOOL_ERROR off for it."
        ),
    }


def premature(e: Mapping[str, Any]) -> dict[str, str]:
    after = plural(e["llm_calls_after"], "model call")
    return {
        "what": (
            f"The tool '{e['failed_tool']}' failed at step {e['failed_step']} and the agent gave its answer "
            f"after {after}, without trying again or another way."
        ),
        "why": (
            "An answer right after a failed tool call is likely made up or incomplete: the data the tool "
            "was meant to fetch never arrived, yet the run looks like a success."
        ),
        "try": (
            f"Check why '{e['failed_tool']}' failed, and tell the agent to say plainly when a tool it needed "
            "failed rather than answering anyway; a retry with backoff in the tool helps with transient errors."
        ),
    }


EXPLAIN = {
    "OVERSIZED_TOOL_ARGUMENTS": oversized,
    "SCATTERSHOT_TOOL_USE": scattershot,
    "UNREAD_TOOL_ERROR": unread,
    "PREMATURE_TERMINATION": premature,
}
