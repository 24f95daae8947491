"""Tools that take LlamaIndex's workflow ``Context``, for the tests.

No ``from __future__ import annotations`` here, on purpose: llama-index-core
0.14 ``FunctionTool`` finds the parameter to inject the Context into by its
annotation object, and a postponed (string) annotation is not recognised, so
the agent would call the tool without it.
"""

from workflows import Context
from workflows.events import HumanResponseEvent, InputRequiredEvent


async def approve(ctx: Context, action: str) -> str:
    """Ask a human to approve an action."""
    answer = await ctx.wait_for_event(HumanResponseEvent, waiter_event=InputRequiredEvent(prefix=f"{action}?"))
    return f"the human said {answer.response}"


async def remember(ctx: Context, city: str) -> str:
    """Look up a city, counting the lookups in the workflow's state."""
    count = await ctx.store.get("lookups", default=0)
    await ctx.store.set("lookups", count + 1)
    return f"sunny in {city}"
