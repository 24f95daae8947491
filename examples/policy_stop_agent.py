"""A stop policy ends a looping agent after a set number of tool calls.
Offline, the core API alone.

The agent's stand-in model keeps asking for the same flight search, which
never helps. One policy, ``stop-search-loop``, lets it search three times;
its fourth model call raises ``dunetrace.PolicyViolation`` instead of going
out, and the run ends ``run.errored`` (error_type ``PolicyViolation``). The
``on_signal`` callback sees each live signal while the run is still going:
the policy's ``POLICY_TRIGGERED``, and, with the live detectors, TOOL_LOOP.

    python -m dunetrace.examples.policy_stop_agent   # against DUNETRACE_ENDPOINT
    dunetrace demo                                    # with a local collector
"""

from __future__ import annotations

from typing import Any

from dunetrace import Dunetrace, PolicyViolation
from dunetrace.live import Signal

EXTRA = None  # nothing beyond the core package
#: `dunetrace demo` prints the lines main() returns.
SHOW_OUTPUT = True
AGENT_ID = "policy-stop-agent"
#: Searches allowed before the policy stops the run.
MAX_SEARCHES = 3


def live_signal_printer(lines: list[str]) -> Any:
    def on_signal(signal: Signal) -> None:
        run = signal.run
        state = "still running" if run is not None and not run.finished else "finished"
        detail = signal.evidence.get("condition") or signal.evidence
        lines.append(f"live signal {signal.type} at step {signal.step_index}, run {state}: {detail}")

    return on_signal


def main(dt: Dunetrace) -> list[str]:
    lines: list[str] = []
    dt.on_signal(live_signal_printer(lines))
    dt.add_policy("stop-search-loop", when={"tool_calls": MAX_SEARCHES, "tool": "search_flights"}, then="stop")

    @dt.tool
    def search_flights(origin: str, destination: str) -> str:
        return f"no flights from {origin} to {destination} today"

    searches = 0
    try:
        with dt.run(
            AGENT_ID,
            user_input="A flight from Lisbon to Tokyo tomorrow?",
            model="fake-model-1",
            tools=["search_flights"],
        ) as run:
            for _ in range(20):  # the stand-in model would go on for ever
                step = run.llm_called("fake-model-1", prompt_tokens=120)
                run.llm_responded(completion_tokens=12, finish_reason="tool_calls", output_length=40, step=step)
                search_flights("LIS", "NRT")
                searches += 1
    except PolicyViolation as stop:
        lines.append(f"stopped after {searches} searches: {stop}")
    return lines


if __name__ == "__main__":
    client = Dunetrace()
    for line in main(client):
        print(line)
    client.shutdown()
