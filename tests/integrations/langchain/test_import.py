"""Importing the integration imports no LangChain; a missing LangChain is a
clear message naming the extra."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import dunetrace.integrations.langchain as integration


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


def test_import_loads_no_framework() -> None:
    out = _python(
        "import sys, json\n"
        "import dunetrace.integrations.langchain as m\n"
        "from dunetrace.integrations.langchain import instrument, uninstrument\n"
        "loaded = sorted(n for n in sys.modules if n.split('.')[0] in ('langchain', 'langchain_core', 'langgraph'))\n"
        "print(json.dumps(loaded))\n"
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize(
    "use",
    [
        "from dunetrace.integrations.langchain import DunetraceCallbackHandler",
        "import dunetrace.integrations.langchain as m; m.instrument(dunetrace.Dunetrace())",
    ],
)
def test_missing_langchain_names_the_extra(use: str) -> None:
    out = _python(f"import sys, dunetrace\nsys.modules['langchain_core'] = None\n{use}\n")
    assert out.returncode != 0
    assert "ImportError" in out.stderr
    assert "pip install 'dunetrace[langchain]'" in out.stderr


def test_public_names() -> None:
    assert integration.__all__ == sorted(integration.__all__)
    for name in integration.__all__:
        assert getattr(integration, name) is not None
    with pytest.raises(AttributeError):
        integration.NoSuchThing  # noqa: B018


def test_handler_arguments_are_checked() -> None:
    from dunetrace import Dunetrace
    from dunetrace.integrations.langchain import DunetraceCallbackHandler

    with pytest.raises(TypeError, match="Dunetrace client"):
        DunetraceCallbackHandler("http://localhost:8001")  # type: ignore[arg-type]
    dt = Dunetrace(enabled=False)
    with pytest.raises(ValueError, match="agent_id"):
        DunetraceCallbackHandler(dt, agent_id="  ")
    with pytest.raises(ValueError, match="max_live_runs"):
        DunetraceCallbackHandler(dt, max_live_runs=0)
    dt.shutdown()
