"""Policy files (TOML and YAML) and cost_usd policies priced by genai-prices."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import pytest

from dunetrace import Dunetrace, PolicyViolation
from dunetrace.policies import PolicyError, load_policies

TOML = """
[[policies]]
name = "stop-search-loop"
when = { tool_calls = 5, tool = "search" }
then = "stop"

[[policies]]
name = "cheaper"
when = { cost_usd = { ">" = 0.5 } }
then = { switch_model = "gpt-4o-mini" }

[[policies]]
name = "nudge"
when = { signal = "TOOL_LOOP" }
then = { inject_prompt = "Try another approach." }
"""

YAML = """
policies:
  - name: stop-search-loop
    when: {tool_calls: 5, tool: search}
    then: stop
  - name: cheaper
    when: {cost_usd: {">": 0.5}}
    then: {switch_model: gpt-4o-mini}
  - name: nudge
    when: {signal: TOOL_LOOP}
    then: {inject_prompt: Try another approach.}
"""


@pytest.mark.parametrize(("suffix", "text"), [(".toml", TOML), (".yaml", YAML), (".yml", YAML)])
def test_toml_and_yaml_files_give_the_same_policies(tmp_path: Any, suffix: str, text: str) -> None:
    path = tmp_path / f"p{suffix}"
    path.write_text(text)
    policies = load_policies(path)
    assert [(p.name, p.when.describe(), p.then.kind, p.then.value) for p in policies] == [
        ("stop-search-loop", "tool_calls of search >= 5", "stop", None),
        ("cheaper", "cost_usd > 0.5", "switch_model", "gpt-4o-mini"),
        ("nudge", "signal TOOL_LOOP", "inject_prompt", "Try another approach."),
    ]


def test_a_bad_file_names_the_file_the_policy_and_the_field(tmp_path: Any) -> None:
    path = tmp_path / "p.toml"
    path.write_text('[[policies]]\nname = "cap"\nwhen = { tool_calls = "five" }\nthen = "stop"\n')
    with pytest.raises(PolicyError) as err:
        load_policies(path)
    assert str(path) in str(err.value) and "policy 'cap': when.tool_calls" in str(err.value)
    path.write_text('[[policies]]\nname = "cap"\nwhen = { tool_calls = 5 }\nthen = "halt"\n')
    with pytest.raises(PolicyError, match="policy 'cap': then 'halt' is not an action"):
        load_policies(path)
    path.write_text('[[rules]]\nname = "cap"\n')
    with pytest.raises(PolicyError, match="one key, policies"):
        load_policies(path)
    path.write_text("[[policies]\n")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policies(path)
    with pytest.raises(PolicyError, match=r"\.toml, \.yaml or \.yml"):
        load_policies(tmp_path / "p.json")
    with pytest.raises(PolicyError, match="no such policy file"):
        load_policies(tmp_path / "missing.toml")
    bad = tmp_path / "p.yaml"
    bad.write_text("policies:\n  - name: x\n    when: {steps: 3}\n")
    with pytest.raises(PolicyError, match="policy 'x': then is missing"):
        load_policies(bad)


def _without(module: str, code: str) -> subprocess.CompletedProcess[str]:
    # A real interpreter in which the package cannot be imported.
    script = f"import sys; sys.modules[{module!r}] = None\n{code}"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_yaml_without_pyyaml_says_what_to_install(tmp_path: Any) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(YAML)
    done = _without("yaml", f"from dunetrace.policies import load_policies\nload_policies({str(path)!r})")
    assert done.returncode != 0 and "needs PyYAML: pip install pyyaml" in done.stderr


def test_a_cost_policy_without_the_prices_extra_names_the_extra() -> None:
    done = _without(
        "genai_prices",
        "from dunetrace import Dunetrace\nDunetrace(export='none').add_policy('c', when={'cost_usd': 1}, then='stop')",
    )
    assert done.returncode != 0 and "pip install 'dunetrace[prices]'" in done.stderr
    done = _without(
        "genai_prices",
        "from dunetrace import Dunetrace\nDunetrace(export='none').add_policy('c', when={'steps': 1}, then='stop')",
    )
    assert done.returncode == 0, done.stderr  # only cost policies need it


def test_cost_comes_from_genai_prices_and_stops_the_run(dt: Dunetrace, ingest) -> None:
    from genai_prices import Usage, calc_price

    per_call = float(calc_price(Usage(input_tokens=100_000, output_tokens=10_000), model_ref="gpt-4o").total_price)
    dt.add_policy("budget", when={"cost_usd": per_call * 2.5}, then="stop")
    calls = 0
    with pytest.raises(PolicyViolation, match="budget"), dt.run("spender", model="gpt-4o") as run:
        for _ in range(10):
            step = run.llm_called("gpt-4o", prompt_tokens=100_000)
            run.llm_responded(completion_tokens=10_000, step=step)
            calls += 1
    assert calls == 3
    assert dt.flush(5)
    (signal,) = [e for e in ingest.events if e["payload"].get("signal_name") == "POLICY_TRIGGERED"]
    assert signal["payload"]["evidence"]["observed"] == pytest.approx(per_call * 3, rel=1e-6)


def test_a_model_without_a_price_costs_nothing_and_says_so_once(dt: Dunetrace, caplog: Any) -> None:
    dt.add_policy("budget", when={"cost_usd": 0.01}, then="stop")
    with caplog.at_level(logging.WARNING, logger="dunetrace"), dt.run("a") as run:
        for _ in range(3):
            step = run.llm_called("acme-private-model-7", prompt_tokens=10**6)
            run.llm_responded(completion_tokens=10**6, step=step)
        run.llm_called("acme-private-model-7")  # never stopped: no cost known
    assert caplog.text.count("no price for model 'acme-private-model-7'") == 1
    assert run.signals == []
