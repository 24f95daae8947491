"""Importing dunetrace imports no framework and starts no thread; the public
surface is what the README says."""

from __future__ import annotations

import json
import subprocess
import sys

import dunetrace

FRAMEWORKS = (
    "langchain",
    "langchain_core",
    "langgraph",
    "llama_index",
    "crewai",
    "openai",
    "anthropic",
    "starlette",
    "uvicorn",
)


def test_import_imports_no_framework_and_starts_no_thread() -> None:
    code = (
        "import sys, threading, json\n"
        "import dunetrace\n"
        "from dunetrace import Dunetrace, get_current_run\n"
        "import dunetrace.integrations\n"
        "dt = Dunetrace()\n"
        f"frameworks = [m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r}]\n"
        "print(json.dumps({'frameworks': frameworks, 'threads': threading.active_count()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    assert result == {"frameworks": [], "threads": 1}


def test_public_names_are_sorted_and_importable() -> None:
    assert dunetrace.__all__ == sorted(dunetrace.__all__)
    for name in dunetrace.__all__:
        assert getattr(dunetrace, name) is not None
    assert callable(dunetrace.get_current_run) and dunetrace.get_current_run() is None
