"""Build the wheel, install it in a clean venv with a third-party plugin
distribution, and use every public import path from there (an editable
install hides packaging bugs)."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

PLUGIN_MODULE = """
from dunetrace import hookimpl

CALLS = []

@hookimpl
def dunetrace_configure(client):
    CALLS.append("configure")

@hookimpl
def dunetrace_event(event):
    CALLS.append(event["event_type"])
    event["payload"]["from_plugin"] = True
"""

CHECK = """
import importlib, json, sys, pkgutil
import dunetrace
from dunetrace import Dunetrace, get_current_run
import dunetrace.integrations, dunetrace.collector, dunetrace.examples
import dt_plugin_example

found = {}
for info in pkgutil.iter_modules(dunetrace.integrations.__path__):
    if info.name.startswith("_"):
        continue
    module = importlib.import_module(f"dunetrace.integrations.{info.name}")
    found[info.name] = module.__file__.startswith(sys.prefix)

out = []
dt = Dunetrace(export="stdout", endpoint="http://127.0.0.1:9")
import io
stream = io.StringIO()
dt.plugins.get_plugin("dunetrace.stdout")._stream = stream
with dt.run("wheel-agent") as run:
    assert get_current_run() is run
    run.tool_called("t", {"a": 1})
dt.shutdown(5)
events = [json.loads(line) for line in stream.getvalue().splitlines()]
FRAMEWORKS = ("langchain_core", "llama_index", "crewai", "openai", "anthropic")
frameworks = [m for m in sys.modules if m.split(".")[0] in FRAMEWORKS]
print(json.dumps({
    "location": dunetrace.__file__.startswith(sys.prefix),
    "integrations": found,
    "plugin_calls": dt_plugin_example.CALLS,
    "from_plugin": [e["payload"].get("from_plugin") for e in events],
    "frameworks": frameworks,
}))
"""


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    work = tmp_path_factory.mktemp("wheel")
    dist = work / "dist"
    shutil.rmtree(ROOT / "build", ignore_errors=True)  # setuptools would reuse stale files from it
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--outdir", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
    )
    plugin = work / "plugin"
    (plugin / "dt_plugin_example").mkdir(parents=True)
    (plugin / "dt_plugin_example" / "__init__.py").write_text(PLUGIN_MODULE)
    (plugin / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools"]
            build-backend = "setuptools.build_meta"
            [project]
            name = "dt-plugin-example"
            version = "1.0"
            [project.entry-points.dunetrace]
            example = "dt_plugin_example"
            [tool.setuptools]
            packages = ["dt_plugin_example"]
            """
        )
    )
    env_dir = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    wheel = next(dist.glob("dunetrace-*.whl"))
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(plugin)],
        check=True,
        capture_output=True,
    )
    (work / "wheel_name").write_text(str(wheel))
    return env_dir


def test_wheel_has_every_package(venv: pathlib.Path) -> None:
    wheel = pathlib.Path((venv.parent / "wheel_name").read_text())
    names = zipfile.ZipFile(wheel).namelist()
    assert "dunetrace/__init__.py" in names and "dunetrace/py.typed" in names
    assert "dunetrace/integrations/__init__.py" in names
    assert "dunetrace/collector/__init__.py" in names and "dunetrace/examples/__init__.py" in names
    for data in [
        *(ROOT / "collector" / "static").iterdir(),
        ROOT / "collector" / "detectors" / "detectors.example.yml",
    ]:
        assert f"dunetrace/collector/{data.relative_to(ROOT / 'collector')}" in names
    assert not any(n.startswith(("tests/", "dunetrace_core/", "integrations/", "benchmarks/")) for n in names)
    for source in (ROOT / "integrations").rglob("*.py"):
        assert f"dunetrace/integrations/{source.relative_to(ROOT / 'integrations')}" in names


def test_public_imports_and_entry_point_plugin_from_the_installed_wheel(
    venv: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", CHECK],
        capture_output=True,
        text=True,
        cwd=tmp_path,  # not the repository: only the installed wheel is importable
        env=env,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["location"] is True
    assert out["integrations"] and all(out["integrations"].values())
    assert out["plugin_calls"] == ["configure", "run.started", "tool.called", "run.completed"]
    assert out["from_plugin"] == [True, True, True]
    assert out["frameworks"] == []  # importing every integration module imported no framework


def test_console_script_from_the_wheel(venv: pathlib.Path) -> None:
    result = subprocess.run([str(venv / "bin" / "dunetrace"), "version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip()
