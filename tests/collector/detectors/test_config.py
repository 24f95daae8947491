"""detectors.yml: built-in defaults, the `default` section, per-agent sections
that inherit from it, and loud errors for typos."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

import dunetrace.collector.detectors as detectors
from dunetrace.collector.detectors import DETECTORS, DetectorConfig, load_config

from .runs import RunBuilder, fired

EXAMPLE = Path(detectors.__file__).parent / "detectors.example.yml"

#: The contract's table of default thresholds, written out independently.
CONTRACT_DEFAULTS = {
    "TOOL_LOOP": {"threshold": 3, "window": 5},
    "TOOL_THRASHING": {"window": 6},
    "RETRY_STORM": {"threshold": 3},
    "CASCADING_TOOL_FAILURE": {"threshold": 3},
    "LLM_TRUNCATION_LOOP": {"threshold": 2},
    "EMPTY_LLM_RESPONSE": {},
    "CONTEXT_BLOAT": {"min_calls": 3, "growth_factor": 3.0, "min_last_tokens": 2000},
    "SLOW_STEP": {"tool_seconds": 15, "llm_seconds": 30, "high_factor": 5.0},
    "TOOL_AVOIDANCE": {"min_llm_calls": 2},
    "GOAL_ABANDONMENT": {"stall_steps": 4},
    "RAG_EMPTY_RETRIEVAL": {"min_score": 0.3, "min_results": 1},
    "STEP_COUNT_INFLATION": {"inflation_factor": 2.0, "min_runs": 10},
    "FIRST_STEP_FAILURE": {"max_step": 2},
    "REASONING_STALL": {"min_llm_calls": 5, "ratio_threshold": 4.0},
    "PROMPT_INJECTION_SIGNAL": {"min_matches": 1},
}
CONTRACT_SEVERITIES = {
    name: "HIGH"
    for name in (
        "TOOL_LOOP",
        "TOOL_THRASHING",
        "RETRY_STORM",
        "CASCADING_TOOL_FAILURE",
        "LLM_TRUNCATION_LOOP",
        "EMPTY_LLM_RESPONSE",
    )
}
CONTRACT_SEVERITIES.update({name: "MEDIUM" for name in CONTRACT_DEFAULTS if name not in CONTRACT_SEVERITIES})
CONTRACT_SEVERITIES["PROMPT_INJECTION_SIGNAL"] = "CRITICAL"


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "detectors.yml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_table_has_the_contracts_fifteen_detectors_and_severities() -> None:
    # The contract's fifteen come first, in its order; the newer ones follow.
    assert [d.name for d in DETECTORS[:15]] == list(CONTRACT_DEFAULTS)
    assert {d.name: d.severity for d in DETECTORS[:15]} == CONTRACT_SEVERITIES


def test_built_in_defaults_are_the_contracts() -> None:
    settings = load_config(None).for_agent("any-agent")
    contract = {name: settings[name] for name in CONTRACT_DEFAULTS}
    assert contract == {name: {"enabled": True, **values} for name, values in CONTRACT_DEFAULTS.items()}


def test_example_file_loads_and_its_default_section_is_the_built_in_defaults() -> None:
    example = load_config(str(EXAMPLE))
    assert example.warnings == []
    assert example.for_agent("someone") == DetectorConfig().for_agent("someone")
    assert example.params("TOOL_LOOP", "web-research")["threshold"] == 5
    assert example.enabled("TOOL_AVOIDANCE", "chat-only") is False


def test_agent_section_inherits_from_default_key_by_key(tmp_path: Path) -> None:
    cfg = load_config(
        write(
            tmp_path,
            """
default:
  tool_loop: {window: 7}
  slow_step: {tool_seconds: 20}
agents:
  my-agent:
    TOOL_LOOP: {min_repeats: 4}
""",
        )
    )
    assert cfg.params("TOOL_LOOP", "my-agent") == {"enabled": True, "threshold": 4, "window": 7}
    assert cfg.params("TOOL_LOOP", "other") == {"enabled": True, "threshold": 3, "window": 7}
    assert cfg.params("SLOW_STEP", "my-agent")["tool_seconds"] == 20.0
    assert cfg.agents == ["my-agent"]


def test_backend_form_top_level_agent_section(tmp_path: Path) -> None:
    # The Dunetrace backend names agent sections at the top level, lowercase,
    # with keys it uses for baseline modes (inflation_factor) that we ignore.
    cfg = load_config(
        write(
            tmp_path,
            """
default:
  tool_loop: {threshold: 3, window: 5}
  reasoning_stall: {ratio_threshold: 5.0, inflation_factor: 2.0}
  slow_step: {inflation_factor: 2.0}
web-research:
  tool_loop: {threshold: 6}
""",
        )
    )
    assert cfg.params("tool_loop", "web-research")["threshold"] == 6
    assert cfg.params("REASONING_STALL", "x") == {"enabled": True, "min_llm_calls": 5, "ratio_threshold": 5.0}


def test_judge_run_uses_the_runs_agent_section() -> None:
    cfg = DetectorConfig.from_mapping({"agents": {"patient": {"tool_loop": {"threshold": 4}}}})

    def loop(agent: str) -> RunBuilder:
        return RunBuilder(agent).tool("s").tool("s").tool("s").answer()

    assert fired(loop("patient"), "TOOL_LOOP", config=cfg) is None
    assert fired(loop("someone-else"), "TOOL_LOOP", config=cfg) is not None


def test_disabled_by_default_and_enabled_for_one_agent() -> None:
    cfg = DetectorConfig.from_mapping(
        {
            "default": {"TOOL_LOOP": {"enabled": False}},
            "agents": {"watched": {"TOOL_LOOP": {"enabled": True}}},
        }
    )

    def loop(agent: str) -> RunBuilder:
        return RunBuilder(agent).tool("s").tool("s").tool("s").answer()

    assert fired(loop("quiet"), "TOOL_LOOP", config=cfg) is None
    assert fired(loop("watched"), "TOOL_LOOP", config=cfg) is not None


def test_empty_file_is_the_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "")).for_agent(None) == DetectorConfig().for_agent(None)
    assert load_config(write(tmp_path, "default:\n  tool_loop:\n")).params("TOOL_LOOP")["threshold"] == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("default:\n  tool_loop: {treshold: 4}\n", "unknown key 'treshold'"),
        ("default:\n  tool_loop: {threshold: four}\n", "must be a number"),
        ("default:\n  tool_loop: {threshold: 2.5}\n", "whole number"),
        ("default:\n  tool_loop: {threshold: 0}\n", "at least 1"),
        ("default:\n  rag_empty_retrieval: {min_score: -0.1}\n", "must not be negative"),
        ("default:\n  tool_loop: {enabled: maybe}\n", "true or false"),
        ("default:\n  tool_loop: {threshold: true}\n", "must be a number"),
        ("default: [tool_loop]\n", "must be a mapping"),
        ("agents: [a]\n", "'agents' must be a mapping"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("default:\n  tool_loop: 3\n", "must be a mapping of threshold keys"),
        ("default: {tool_loop: [\n", "not valid YAML"),
        ("agents:\n  bot:\n    slow_step: {llm_seconds: x}\n", "bot.slow_step.llm_seconds"),
    ],
)
def test_bad_settings_are_errors_naming_the_place(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ValueError, match=message) as info:
        load_config(path)
    assert path in str(info.value)


def test_zero_allowed_only_where_it_means_something() -> None:
    cfg = DetectorConfig.from_mapping({"default": {"first_step_failure": {"max_step": 0}}})
    assert cfg.params("FIRST_STEP_FAILURE")["max_step"] == 0


def test_unknown_detector_is_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dunetrace"):
        cfg = DetectorConfig.from_mapping({"default": {"cost_spike": {"threshold": 2}, "tool_loop": {"window": 6}}})
    assert cfg.params("TOOL_LOOP")["window"] == 6
    assert len(cfg.warnings) == 1 and "cost_spike" in cfg.warnings[0]
    assert "cost_spike" in caplog.text


def test_missing_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_config(str(tmp_path / "nope.yml"))


def test_params_returns_a_copy_and_rejects_unknown_names() -> None:
    cfg = DetectorConfig()
    cfg.params("TOOL_LOOP")["threshold"] = 99
    assert cfg.params("TOOL_LOOP")["threshold"] == 3
    with pytest.raises(KeyError):
        cfg.params("NOT_A_DETECTOR")


def test_to_dict_shows_effective_settings() -> None:
    cfg = DetectorConfig.from_mapping({"agents": {"a": {"retry_storm": {"threshold": 5}}}})
    data = cfg.to_dict()
    assert data["default"]["RETRY_STORM"]["threshold"] == 3
    assert data["agents"]["a"]["RETRY_STORM"]["threshold"] == 5
