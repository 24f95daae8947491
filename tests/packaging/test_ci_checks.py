"""`.ci/run` checks style, types and architecture before any test, and the
first check that fails stops it with a message naming that check.

Each test runs the real `.ci/run` (which runs scripts/test.sh, which runs
scripts/check.sh) in a copy of those scripts with empty source folders. The
checking tools are stand-ins on PATH that write down how they were called and
pass or fail as the test asks, so what is checked here is the scripts' order
and fail-fast, not the tree's state; the copy's one test leaves a mark when
pytest reaches it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Each check .ci/run must make before the tests, in order: its name in
#: scripts/check.sh's messages and the command line the stand-in sees.
CHECKS = [
    ("lint", "ruff check ."),
    ("format", "ruff format --check ."),
    ("architecture", "lint-imports --config"),
    ("types", "mypy --config-file"),
]

STAND_IN = """#!{python}
import os, sys
name = {name!r}
line = " ".join([name, *sys.argv[1:]])
with open(os.environ["CHECK_LOG"], "a") as log:
    log.write(line + "\\n")
sys.exit(1 if os.environ.get("FAIL_CHECK") and line.startswith(os.environ["FAIL_CHECK"]) else 0)
"""

MARK_TEST = """
import os

def test_leaves_a_mark():
    with open(os.environ["CHECK_LOG"], "a") as log:
        log.write("pytest\\n")
"""


@pytest.fixture
def ci_copy(tmp_path: Path) -> Path:
    """The CI scripts and pyproject.toml in a folder of their own, the source
    folders empty and one test that leaves a mark."""
    copy = tmp_path / "repo"
    for name in (
        ".ci/run",
        "scripts/test.sh",
        "scripts/check.sh",
        "scripts/lint_imports.py",
        "scripts/typecheck.py",
        "scripts/package_tree.py",
        "pyproject.toml",
    ):
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    for folder in ("dunetrace_core", "integrations", "collector", "examples"):
        (copy / folder).mkdir()
    (copy / "tests").mkdir()
    (copy / "tests" / "test_mark.py").write_text(textwrap.dedent(MARK_TEST))
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in ("ruff", "lint-imports"):
        (tools / name).write_text(STAND_IN.format(python=sys.executable, name=name))
        (tools / name).chmod(0o755)
    # `python -m mypy` finds this package before the real one.
    (tools / "mypy").mkdir()
    (tools / "mypy" / "__init__.py").write_text("")  # a regular package: found before the installed mypy
    (tools / "mypy" / "__main__.py").write_text(STAND_IN.format(python=sys.executable, name="mypy"))
    return copy


def run_ci(copy: Path, fail: str = "") -> tuple[subprocess.CompletedProcess[str], list[str]]:
    tools = copy.parent / "tools"
    log = copy.parent / "calls.log"
    env = dict(os.environ)
    env.update(
        PATH=os.pathsep.join([str(tools), str(Path(sys.executable).parent), env.get("PATH", "")]),
        PYTHONPATH=str(tools),
        CHECK_LOG=str(log),
        FAIL_CHECK=fail,
        # The copy must not be installed over this checkout's editable install.
        DUNETRACE_SKIP_SETUP="1",
    )
    result = subprocess.run(
        ["bash", str(copy / ".ci" / "run")], cwd=copy, env=env, capture_output=True, text=True, timeout=300
    )
    calls = log.read_text().splitlines() if log.exists() else []
    return result, calls


def test_every_check_runs_in_order_before_the_tests(ci_copy: Path) -> None:
    result, calls = run_ci(ci_copy)
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(calls) == len(CHECKS) + 1, calls
    for (_, command), call in zip(CHECKS, calls, strict=False):
        assert call.startswith(command), calls
    assert calls[-1] == "pytest"
    assert "1 passed" in result.stdout


@pytest.mark.parametrize(("name", "command"), CHECKS, ids=[name for name, _ in CHECKS])
def test_a_failed_check_stops_the_run_before_the_tests(ci_copy: Path, name: str, command: str) -> None:
    result, calls = run_ci(ci_copy, fail=command)
    assert result.returncode != 0
    assert f"check failed: {name}" in result.stderr
    assert "the tests were not run" in result.stderr
    assert calls[-1].startswith(command), calls  # nothing after the failed check
    assert "pytest" not in calls
