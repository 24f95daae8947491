"""The exit reasons a run can end with (``run.completed.payload.exit_reason``).

One vocabulary for every integration, so a dashboard, a detector or a user's
query reads the same word for the same ending whichever framework ran the
agent. A run that raised ends ``run.errored`` instead, with the exception's
class as ``error_type``; a ``stop`` policy's run ends that way too
(``PolicyViolation``).
"""

from __future__ import annotations

#: The agent produced its final answer.
FINAL_ANSWER = "final_answer"
#: The run ended without error, with no sign of a final answer (a chain, a
#: workflow, a plain function).
COMPLETED = "completed"
#: Paused for a human (LangGraph ``interrupt()``, LlamaIndex
#: ``InputRequiredEvent``, CrewAI human input): the run that resumes it
#: starts with ``run.started.payload.resumed_from`` naming this run.
INTERRUPTED = "interrupted"
#: Cancelled from outside: ``task.cancel()``, an ``asyncio`` timeout, a
#: ``KeyboardInterrupt``, LlamaIndex ``handler.cancel_run()``.
CANCELLED = "cancelled"
#: Never ended by its framework: closed by Dunetrace at shutdown, or when
#: more runs were open at once than an integration keeps.
ABANDONED = "abandoned"
#: A guardrail rejected the agent's input or output (CrewAI task guardrails,
#: OpenAI Agents SDK guardrail trips).
GUARDRAIL = "guardrail"
#: The framework's iteration or step limit stopped the agent (LangGraph
#: ``recursion_limit``, CrewAI ``max_iter``, LlamaIndex ``max_iterations``).
MAX_ITERATIONS = "max_iterations"

#: Every exit reason above, in the order a reader meets them.
EXIT_REASONS = (FINAL_ANSWER, COMPLETED, INTERRUPTED, CANCELLED, ABANDONED, GUARDRAIL, MAX_ITERATIONS)
#: The endings that are answers; the others are not (a detector that asks
#: "did the agent answer?" reads this).
ANSWERED = frozenset({FINAL_ANSWER, COMPLETED})
