"""Run mypy on the ``dunetrace`` package as users import it.

The import names map onto folders of other names (setup.py: ``dunetrace`` is
``dunetrace_core/``, ``dunetrace.integrations`` is ``integrations/``, ...).
mypy has no setting that renames a folder into a package, so this lays the
package out as a tree of links (scripts/package_tree.py) in
``build/typecheck/``, rebuilt each run, and runs mypy there with the settings of
``[tool.mypy]`` in pyproject.toml. Errors name files by their import path
(``dunetrace/client.py``).

    python scripts/typecheck.py            # the core, strict (what CI runs)
    python scripts/typecheck.py -p dunetrace.integrations.langchain   # any other part
"""

from __future__ import annotations

import os
import subprocess
import sys

import package_tree

REPO = package_tree.REPO
VIEW = REPO / "build" / "typecheck"


def main(argv: list[str]) -> int:
    view = package_tree.build(VIEW)
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
