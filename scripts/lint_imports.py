"""Runs import-linter's contracts (``[tool.importlinter]`` in pyproject.toml)
over the whole ``dunetrace`` package.

Import-linter finds a package's modules by walking the one folder its import
spec names, and ``dunetrace`` lives in four folders (setup.py maps
``dunetrace.integrations`` to ``integrations/`` and so on). This script lays
the four folders out as one ``dunetrace`` tree of symbolic links
(scripts/package_tree.py) in a temporary folder, puts that folder first on ``PYTHONPATH`` and runs
``lint-imports`` there, so every contract sees every module under its real
import name. Arguments are passed on to ``lint-imports``.

    python scripts/lint_imports.py            # every contract
    python scripts/lint_imports.py --verbose
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import package_tree

ROOT = package_tree.REPO


def main(argv: list[str]) -> int:
    executable = shutil.which("lint-imports")
    if executable is None:
        print("lint-imports is missing: pip install -e '.[lint]'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="dunetrace-lint-imports-") as tmp:
        package_tree.build(Path(tmp))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (tmp, env.get("PYTHONPATH", "")) if p)
        # The cache would hold the temporary folder's paths; each run builds the graph afresh (about a second).
        command = [executable, "--config", str(ROOT / "pyproject.toml"), "--no-cache", *argv]
        return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
