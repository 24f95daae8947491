"""Run mypy on the ``dunetrace`` package as users import it.

The import names map onto folders of other names (setup.py: ``dunetrace`` is
``dunetrace_core/``, ``dunetrace.integrations`` is ``integrations/``, ...).
An editable install finds them through setuptools' import hook, which mypy
does not run, and mypy has no setting that renames a folder into a package.
So this builds the package's tree out of symbolic links, as the wheel lays
it out, in a folder of its own (``build/typecheck/``, rebuilt each run so a
new module is never missed), and runs mypy there with the settings of
``[tool.mypy]`` in pyproject.toml. Errors name files by their import path
(``dunetrace/client.py``).

    python scripts/typecheck.py            # the core, strict (what CI runs)
    python scripts/typecheck.py -p dunetrace.integrations.langchain   # any other part
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
VIEW = REPO / "build" / "typecheck"

#: setup.py's mapping, outermost package first.
FOLDERS = {
    "dunetrace": "dunetrace_core",
    "dunetrace.integrations": "integrations",
    "dunetrace.collector": "collector",
    "dunetrace.examples": "examples",
}


def build_view() -> pathlib.Path:
    """The package tree under ``VIEW``: a real folder per mapped package,
    holding links to every entry of its source folder."""
    shutil.rmtree(VIEW, ignore_errors=True)
    for name, folder in FOLDERS.items():
        target = VIEW.joinpath(*name.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for entry in (REPO / folder).iterdir():
            if entry.name == "__pycache__" or (target / entry.name).exists():
                continue
            (target / entry.name).symlink_to(entry)
    return VIEW


def main(argv: list[str]) -> int:
    view = build_view()
    # By default the core: the links into its own folder, not the layers
    # mapped below it (real folders here), which mypy follows for types only.
    core = [
        f"dunetrace/{entry.name}"
        for entry in sorted((view / "dunetrace").iterdir())
        if entry.is_symlink() and (entry.suffix == ".py" or (entry / "__init__.py").exists())
    ]
    targets = argv or core
    command = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml"), *targets]
    env = {**os.environ, "MYPYPATH": str(view)}
    return subprocess.call(command, cwd=view, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
