"""A log policy: the callback and the shipped signal, nothing else. Offline,
the core API alone.

``token-budget`` watches the tokens of each run; when a run passes 1,000 it
triggers once: the ``on_signal`` callback gets a ``POLICY_TRIGGERED`` signal
(here, printed) and the same signal is sent to Dunetrace as an
``external.signal``; the agent itself goes on unchanged.

    python -m dunetrace.examples.policy_log_agent
"""

from __future__ import annotations

from dunetrace import Dunetrace
from dunetrace.live import Signal

EXTRA = None
#: `dunetrace demo` prints the lines main() returns.
SHOW_OUTPUT = True
AGENT_ID = "policy-log-agent"


def main(dt: Dunetrace) -> list[str]:
    lines: list[str] = []

    def on_signal(signal: Signal) -> None:
        if signal.type == "POLICY_TRIGGERED":
            lines.append(
                f"policy {signal.evidence['policy']} triggered: {signal.evidence['condition']} "
                f"(observed {signal.evidence['observed']})"
            )

    dt.on_signal(on_signal)
    dt.add_policy("token-budget", when={"tokens": 1000}, then="log")
    with dt.run(AGENT_ID, user_input="Summarise the quarterly report", model="fake-model-1") as run:
        calls = 6
        for _ in range(calls):  # the stand-in model reads the report in chunks
            step = run.llm_called("fake-model-1", prompt_tokens=200)
            run.llm_responded(completion_tokens=60, finish_reason="stop", output_length=240, step=step)
        run.final_answer()
    lines.append(f"the run completed after {calls} model calls")
    return lines


if __name__ == "__main__":
    client = Dunetrace()
    for line in main(client):
        print(line)
    client.shutdown()
