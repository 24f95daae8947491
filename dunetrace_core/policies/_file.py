"""Policy files: TOML (the standard library's tomllib, or tomli before
Python 3.11) or YAML (with PyYAML installed), named by
``DUNETRACE_POLICIES`` or passed to :func:`load_policies`.

Both hold a list under ``policies``, each item with ``name``, ``when`` and
``then``::

    [[policies]]
    name = "stop-search-loop"
    when = { tool_calls = 5, tool = "search" }
    then = "stop"
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from ._model import Policy, PolicyError

__all__ = ["ENV", "load_policies"]

#: The environment variable naming a policy file, read by ``Dunetrace()``.
ENV = "DUNETRACE_POLICIES"


def _read_toml(path: Path) -> Any:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError as exc:
            raise PolicyError(
                f"{path}: reading a TOML policy file on Python 3.10 needs tomli: pip install tomli"
            ) from exc
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{path}: not valid TOML: {exc}") from exc


def _read_yaml(path: Path) -> Any:
    try:
        import yaml
    except ImportError as exc:
        raise PolicyError(
            f"{path}: reading a YAML policy file needs PyYAML: pip install pyyaml (or write the file as TOML)"
        ) from exc
    try:
        with path.open("rb") as file:
            return yaml.safe_load(file)
    except yaml.YAMLError as exc:
        raise PolicyError(f"{path}: not valid YAML: {exc}") from exc


def load_policies(path: str | os.PathLike[str]) -> list[Policy]:
    """The policies in a ``.toml``, ``.yaml`` or ``.yml`` file, each checked;
    a :class:`PolicyError` names the file, the policy and the field."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".toml", ".yaml", ".yml"):
        raise PolicyError(f"{file}: a policy file ends in .toml, .yaml or .yml")
    if not file.is_file():
        raise PolicyError(f"{file}: no such policy file (set by {ENV} or passed to load_policies)")
    data = _read_toml(file) if suffix == ".toml" else _read_yaml(file)
    if not isinstance(data, dict) or set(data) != {"policies"} or not isinstance(data["policies"], list):
        raise PolicyError(f"{file}: a policy file holds one key, policies, a list of {{name, when, then}}")
    policies = []
    for index, item in enumerate(data["policies"]):
        try:
            policies.append(Policy.from_mapping(item, where=f"policies[{index}]"))
        except PolicyError as exc:
            raise PolicyError(f"{file}: {exc}") from None
    return policies
