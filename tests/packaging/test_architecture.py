"""The import-linter contracts in pyproject.toml bite, across all four
folders of the package: a copy of the tree with one forbidden import added
breaks the contract that forbids it, and the same copy without it keeps it.
(Without scripts/lint_imports.py's tree of links lint-imports would see only
the core's folder: the integrations and collector cases below would fail.)

Each test runs the real scripts/lint_imports.py (and so the real
lint-imports) on a copy of the source folders, so the checkout is never
changed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

if sys.version_info >= (3, 11):
    import tomllib
else:  # tomli is a dependency below 3.11
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]

FOLDERS = ("dunetrace_core", "integrations", "collector", "examples")

#: (contract id, file added to the copy, its forbidden import, what the
#: broken contract reports).
FORBIDDEN = [
    ("core", "dunetrace_core/_forbidden.py", "import dunetrace.integrations.langchain", "dunetrace._forbidden"),
    ("core", "dunetrace_core/_forbidden.py", "import dunetrace.collector.store", "dunetrace._forbidden"),
    ("core", "dunetrace_core/_forbidden.py", "import langchain_core", "dunetrace._forbidden"),
    ("core", "dunetrace_core/_forbidden.py", "import starlette", "dunetrace._forbidden"),
    (
        "integrations",
        "integrations/crewai/_forbidden.py",
        "import dunetrace.integrations.langchain.translator",
        "dunetrace.integrations.crewai",
    ),
    ("collector", "collector/_forbidden.py", "import dunetrace.buffer", "dunetrace.collector._forbidden"),
    ("collector", "collector/_forbidden.py", "import dunetrace.integrations.crewai", "dunetrace.collector._forbidden"),
    ("collector-root", "collector/_forbidden.py", "from dunetrace import Dunetrace", "dunetrace.collector._forbidden"),
]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    copy = tmp_path / "repo"
    for folder in FOLDERS:
        shutil.copytree(ROOT / folder, copy / folder, ignore=shutil.ignore_patterns("__pycache__", "static"))
    (copy / "scripts").mkdir()
    for script in ("lint_imports.py", "package_tree.py"):
        shutil.copy2(ROOT / "scripts" / script, copy / "scripts")
    shutil.copy2(ROOT / "pyproject.toml", copy)
    return copy


def lint_imports(tree: Path, contract: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(tree / "scripts" / "lint_imports.py"), "--contract", contract],
        cwd=tree,
        capture_output=True,
        text=True,
        timeout=120,
    )


def add_module(tree: Path, path: str, line: str) -> None:
    (tree / path).write_text(f'"""A module with a forbidden import."""\n\n{line}\n')


@pytest.mark.parametrize(("contract", "path", "line", "reported"), FORBIDDEN)
def test_a_forbidden_import_breaks_its_contract(tree: Path, contract: str, path: str, line: str, reported: str) -> None:
    add_module(tree, path, "")
    kept = lint_imports(tree, contract)
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "KEPT" in kept.stdout
    add_module(tree, path, line)
    broken = lint_imports(tree, contract)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "BROKEN" in broken.stdout
    assert reported in broken.stdout


def test_a_cycle_in_the_collector_breaks_the_acyclic_contract(tree: Path) -> None:
    # app imports ingest; ingest importing app back is the cycle instance.py ended.
    ingest = tree / "collector" / "ingest.py"
    ingest.write_text(ingest.read_text() + "\nfrom . import app as _app  # noqa: E402\n")
    result = lint_imports(tree, "acyclic")
    assert result.returncode == 1
    assert "No cycles are allowed in dunetrace.collector." in result.stdout


def test_every_integration_is_in_the_independence_contract() -> None:
    """A new folder under integrations/ is independent of the others only
    once the contract lists it."""
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (independence,) = [c for c in contracts if c["id"] == "integrations"]
    folders = {p.parent.name for p in (ROOT / "integrations").glob("*/__init__.py")}
    assert {f"dunetrace.integrations.{name}" for name in folders} == set(independence["modules"])
