"""Policies: act on a run while it runs. ``dt.add_policy(name, when=...,
then=...)``, ``Dunetrace(policies=[...])`` or a policy file named by
``DUNETRACE_POLICIES``. See the README's Policies section."""

from __future__ import annotations

from ._engine import POLICY_TRIGGERED, PolicyEngine
from ._file import ENV, load_policies
from ._model import ACTIONS, OPERATORS, TRIGGERS, Action, Condition, Policy, PolicyError, PolicyViolation

__all__ = [
    "ACTIONS",
    "ENV",
    "OPERATORS",
    "POLICY_TRIGGERED",
    "TRIGGERS",
    "Action",
    "Condition",
    "Policy",
    "PolicyEngine",
    "PolicyError",
    "PolicyViolation",
    "load_policies",
]
