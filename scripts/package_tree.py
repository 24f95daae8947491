"""The ``dunetrace`` package laid out as the wheel lays it out, as a tree of
symbolic links, for the tools that find modules by walking folders.

The import names map onto folders of other names (setup.py: ``dunetrace`` is
``dunetrace_core/``, ``dunetrace.integrations`` is ``integrations/``, ...).
An editable install finds them through setuptools' import hook, which mypy
and import-linter do not run. ``build(into)`` makes a real folder per
mapped package under ``into`` holding a link to every entry of its source
folder; scripts/typecheck.py and scripts/lint_imports.py both use it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: setup.py's mapping, outermost package first.
FOLDERS = {
    "dunetrace": "dunetrace_core",
    "dunetrace.integrations": "integrations",
    "dunetrace.collector": "collector",
    "dunetrace.examples": "examples",
}


def build(into: Path, repo: Path = REPO) -> Path:
    """Lay the package out under ``into`` (emptied first, so a new module is
    never missed) and return ``into``. A core entry named like a mapped
    package would hide it: that is an error naming both."""
    shutil.rmtree(into, ignore_errors=True)
    mapped = {name.rsplit(".", 1)[-1] for name in FOLDERS if "." in name}
    for name, folder in FOLDERS.items():
        target = into.joinpath(*name.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for entry in (repo / folder).iterdir():
            if entry.name == "__pycache__":
                continue
            if name == "dunetrace" and entry.name in mapped:
                raise SystemExit(f"{folder}/{entry.name} would hide the {entry.name}/ folder; rename one of them")
            (target / entry.name).symlink_to(entry)
    return into
