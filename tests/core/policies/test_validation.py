"""Policies are checked when made: every mistake is an error naming the
policy and the field; every well-formed policy is accepted as written."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dunetrace import Dunetrace, Policy
from dunetrace.policies import ACTIONS, OPERATORS, TRIGGERS, PolicyError

names = st.text(min_size=1, max_size=20).filter(lambda s: s.strip())
counts = st.integers(min_value=1, max_value=10**9)
amounts = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
count_triggers = st.sampled_from([t for t, k in TRIGGERS.items() if k == "count"])
amount_triggers = st.sampled_from([t for t, k in TRIGGERS.items() if k == "amount"])


@st.composite
def conditions(draw: Any) -> dict[str, Any]:
    kind = draw(st.sampled_from(["signal", "count", "amount"]))
    if kind == "signal":
        return {"signal": draw(st.sampled_from(["TOOL_LOOP", "RETRY_STORM", "CONTEXT_BLOAT"]))}
    trigger = draw(count_triggers if kind == "count" else amount_triggers)
    value = draw(counts if kind == "count" else amounts)
    when: dict[str, Any] = {trigger: draw(st.sampled_from([value, {">=": value}, {">": value}]))}
    if trigger == "tool_calls" and draw(st.booleans()):
        when["tool"] = draw(names)
    return when


actions = st.one_of(
    st.sampled_from(["stop", "log"]),
    st.builds(lambda m: {"switch_model": m}, names),
    st.builds(lambda t: {"inject_prompt": t}, names),
)


@given(name=names, when=conditions(), then=actions)
def test_every_well_formed_policy_is_accepted_as_written(name: str, when: dict[str, Any], then: Any) -> None:
    policy = Policy.make(name, when, then)
    (trigger,) = [k for k in when if k != "tool"]
    assert policy.name == name and policy.when.trigger == trigger
    raw = when[trigger]
    if isinstance(raw, dict):
        ((operator, raw),) = raw.items()
        assert policy.when.operator == operator
    assert policy.when.threshold == (raw.strip() if isinstance(raw, str) else raw)
    assert policy.when.tool == when.get("tool")
    assert policy.then.kind == (then if isinstance(then, str) else next(iter(then)))


@given(name=names, trigger=st.text(min_size=1, max_size=15).filter(lambda s: s not in TRIGGERS and s != "tool"))
def test_an_unknown_trigger_names_the_policy_and_the_field(name: str, trigger: str) -> None:
    with pytest.raises(PolicyError) as err:
        Policy.make(name, {trigger: 3}, "stop")
    assert f"policy {name!r}" in str(err.value) and f"when.{trigger}" in str(err.value)


@given(name=names, trigger=count_triggers, op=st.text(min_size=1, max_size=3).filter(lambda s: s not in OPERATORS))
def test_an_unknown_operator_names_the_policy_and_the_field(name: str, trigger: str, op: str) -> None:
    with pytest.raises(PolicyError) as err:
        Policy.make(name, {trigger: {op: 3}}, "stop")
    assert f"policy {name!r}" in str(err.value) and f"when.{trigger}" in str(err.value) and "operator" in str(err.value)


@given(name=names, action=st.text(min_size=1, max_size=15).filter(lambda s: s not in ACTIONS))
def test_an_unknown_action_names_the_policy_and_the_field(name: str, action: str) -> None:
    for then in (action, {action: "x"}):
        with pytest.raises(PolicyError) as err:
            Policy.make(name, {"steps": 3}, then)
        assert f"policy {name!r}" in str(err.value) and "then" in str(err.value) and "not an action" in str(err.value)


wrong_counts = st.one_of(
    st.integers(max_value=0),
    st.floats(allow_nan=True),
    st.text(max_size=5),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
wrong_amounts = st.one_of(
    st.floats(max_value=0),
    st.just(math.nan),
    st.just(math.inf),
    st.text(max_size=5),
    st.booleans(),
    st.none(),
)


@given(name=names, trigger=count_triggers, value=wrong_counts, wrap=st.booleans())
def test_a_count_of_the_wrong_type_names_the_policy_and_the_field(
    name: str, trigger: str, value: Any, wrap: bool
) -> None:
    with pytest.raises(PolicyError) as err:
        Policy.make(name, {trigger: {">=": value} if wrap else value}, "stop")
    assert f"policy {name!r}" in str(err.value) and f"when.{trigger}" in str(err.value)


@given(name=names, trigger=amount_triggers, value=wrong_amounts)
def test_an_amount_of_the_wrong_type_names_the_policy_and_the_field(name: str, trigger: str, value: Any) -> None:
    with pytest.raises(PolicyError) as err:
        Policy.make(name, {trigger: value}, "log")
    assert f"policy {name!r}" in str(err.value) and f"when.{trigger}" in str(err.value)


@given(
    name=names,
    kind=st.sampled_from(["switch_model", "inject_prompt"]),
    value=st.one_of(st.none(), st.integers(), st.just(""), st.just("  "), st.lists(st.text(), max_size=2)),
)
def test_an_action_value_of_the_wrong_type_names_the_policy_and_the_field(name: str, kind: str, value: Any) -> None:
    with pytest.raises(PolicyError) as err:
        Policy.make(name, {"steps": 2}, {kind: value})
    assert f"policy {name!r}" in str(err.value) and f"then.{kind}" in str(err.value)


@given(
    value=st.one_of(st.integers(), st.text(max_size=3), st.none()).filter(
        lambda v: not (isinstance(v, str) and v.strip())
    )
)
def test_a_signal_that_is_not_a_name_is_refused(value: Any) -> None:
    with pytest.raises(PolicyError, match=r"policy 'p': when.signal"):
        Policy.make("p", {"signal": value}, "log")


@settings(max_examples=50)
@given(name=st.one_of(st.none(), st.integers(), st.just(""), st.just(" ")))
def test_a_policy_needs_a_name(name: Any) -> None:
    with pytest.raises(PolicyError, match="needs a name"):
        Policy.make(name, {"steps": 3}, "stop")


def test_the_shapes_of_when_and_then_are_checked() -> None:
    cases = [
        ({}, "stop", "exactly one trigger"),
        ({"steps": 3, "tokens": 4}, "stop", "exactly one trigger"),
        ({"steps": 3, "tool": "x"}, "stop", "when.tool only goes with tool_calls"),
        ({"tool_calls": 3, "tool": ""}, "stop", "when.tool must be a tool name"),
        ({"steps": {">=": 1, ">": 2}}, "stop", "one operator"),
        ("steps >= 3", "stop", "when must be a mapping"),
        ({"steps": 3}, "switch_model", "needs a model name"),
        ({"steps": 3}, {"stop": "now"}, "then.stop takes no value"),
        ({"steps": 3}, {"stop": 1, "log": 1}, "one {action: value} pair"),
    ]
    for when, then, message in cases:
        with pytest.raises(PolicyError, match=message.replace("{", r"\{").replace("}", r"\}")):
            Policy.make("p", when, then)


def test_the_client_takes_policies_and_refuses_a_name_twice() -> None:
    dt = Dunetrace(export="none", policies=[{"name": "a", "when": {"steps": 3}, "then": "log"}])
    try:
        dt.add_policy("b", when={"signal": "TOOL_LOOP"}, then="stop")
        assert [p.name for p in dt.policies] == ["a", "b"]
        with pytest.raises(PolicyError, match="policy 'a': name already used"):
            dt.add_policy("a", when={"steps": 1}, then="stop")
        with pytest.raises(PolicyError, match="policy 'c': bogus is not a policy field"):
            Dunetrace(export="none", policies=[{"name": "c", "when": {"steps": 1}, "then": "stop", "bogus": 1}])
        with pytest.raises(TypeError, match="list of policies"):
            Dunetrace(export="none", policies={"name": "c"})
    finally:
        dt.shutdown()


policy_items = st.builds(lambda n, w, t: {"name": n, "when": w, "then": t}, names, conditions(), actions)


@settings(max_examples=60, deadline=None)
@given(items=st.lists(policy_items, min_size=1, max_size=4, unique_by=lambda p: p["name"]))
def test_a_file_of_policies_loads_as_the_same_policies(tmp_path_factory: Any, items: list[dict[str, Any]]) -> None:
    import tomli_w
    import yaml

    from dunetrace.policies import load_policies

    folder = tmp_path_factory.mktemp("files")
    expected = [Policy.make(i["name"], i["when"], i["then"]) for i in items]
    toml_file, yaml_file = folder / "p.toml", folder / "p.yaml"
    toml_file.write_text(tomli_w.dumps({"policies": items}))
    yaml_file.write_text(yaml.safe_dump({"policies": items}))
    assert load_policies(toml_file) == expected
    assert load_policies(yaml_file) == expected
