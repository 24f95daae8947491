"""The ``dunetrace`` command: ``demo`` (the README's main job), ``runs`` and
``signals`` against a running collector, ``serve``, and the message when the
collector extra is missing."""

from __future__ import annotations

import importlib.metadata
import io
import json
import os
import re
import subprocess
import sys
import time
from typing import Any

import httpx
import pytest

from dunetrace import Dunetrace
from dunetrace.cli import main
from dunetrace.collector import demo
from dunetrace.collector.server import BackgroundServer

from .test_end_to_end import healthy_run, looping_run
from .wire import batch, tool_loop_run


def run_cli(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dunetrace.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env},
        check=False,
    )


def test_demo_runs_every_installed_example_and_finds_the_tool_loop(tmp_path: Any) -> None:
    started = time.monotonic()
    result = run_cli("demo", "--exit", "--db", str(tmp_path / "demo.db"))
    took = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "- manual_agent: ran agent 'manual-agent'" in out
    assert re.search(r"HIGH\s+TOOL_LOOP\s+manual-agent\s+[0-9a-f-]{36}", out), out
    assert "What happened:" in out and "What to try:" in out
    assert re.search(r"Dashboard: http://127\.0\.0\.1:\d+/", out)
    # Every example whose extra is installed ran (here all of them are).
    for example in demo.find_examples():
        if not demo.missing_requirements(example.extra):
            assert f"- {example.name}: ran agent" in out, out
    # The goal is under a minute on an idle machine; the bound leaves room
    # for a CI machine busy with other suites.
    assert took < 120, f"demo took {took:.1f}s"


def test_demo_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    # As if crewai were not installed: the metadata lookup of the extra's
    # requirements is what the demo asks.
    real_version = importlib.metadata.version

    def version(name: str) -> str:
        if name == "crewai":
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setattr(
        demo,
        "find_examples",
        lambda: [
            demo.Example("dunetrace.examples.manual_agent", None),
            demo.Example("dunetrace.examples.crewai_agent", "crewai"),
        ],
    )
    out = io.StringIO()
    assert demo.run_demo(out, db_path=str(tmp_path / "d.db"), timeout=20) == 0
    text = out.getvalue()
    assert "- crewai_agent: skipped, needs crewai: pip install 'dunetrace[crewai]'" in text
    assert "- manual_agent: ran agent 'manual-agent'" in text
    assert "TOOL_LOOP" in text


def test_every_example_declares_what_the_demo_needs() -> None:
    examples = demo.find_examples()
    assert "dunetrace.examples.manual_agent" in [e.module for e in examples]
    extras = importlib.metadata.metadata("dunetrace").get_all("Provides-Extra") or []
    for example in examples:
        assert example.extra is None or example.extra in extras, example
    assert demo.missing_requirements(None) == []
    assert demo.missing_requirements("collector") == []  # installed in the test environment


def test_runs_and_signals_commands(
    collector: BackgroundServer, sdk: Dunetrace, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = looping_run(sdk)
    fine = healthy_run(sdk, agent="agent-b")
    assert sdk.flush(5)
    assert collector.collector.judge.wait_idle(5)

    assert main(["runs", "--url", collector.url]) == 0
    out = capsys.readouterr().out
    assert loop in out and fine in out and out.startswith("RUN ")
    assert main(["runs", "--url", collector.url, "--with-signals"]) == 0
    out = capsys.readouterr().out
    assert loop in out and fine not in out
    assert main(["runs", "--url", collector.url, "--agent", "agent-b", "--json"]) == 0
    assert [r["run_id"] for r in json.loads(capsys.readouterr().out)] == [fine]

    assert main(["signals", "--url", collector.url, "--explain"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"HIGH\s+TOOL_LOOP\s+agent-a\s+{loop}", out)
    assert "What to try:" in out
    assert main(["signals", "--url", collector.url, "--severity", "low"]) == 0
    assert capsys.readouterr().out.strip() == "(no signals)"
    assert main(["signals", "--url", collector.url, "--detector", "tool_loop", "--agent", "agent-a"]) == 0
    assert loop in capsys.readouterr().out


def test_runs_without_a_collector_says_how_to_start_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["runs", "--url", "http://127.0.0.1:9"]) == 1
    assert "dunetrace serve" in capsys.readouterr().err


def test_serve_starts_a_collector(tmp_path: Any) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dunetrace.cli",
            "serve",
            "--port",
            str(port),
            "--db",
            str(tmp_path / "s.db"),
            "--api-key",
            "k1",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.1)
        body = {
            "api_key": "wrong",
            "agent_id": "a",
            "events": [
                {
                    "event_type": "run.started",
                    "run_id": "r",
                    "agent_id": "a",
                    "agent_version": "v",
                    "step_index": 0,
                    "timestamp": 1.0,
                    "payload": {},
                }
            ],
        }
        assert httpx.post(url + "/v1/ingest", json=body).status_code == 401
        assert httpx.post(url + "/v1/ingest", json={**body, "api_key": "k1"}).status_code == 202
        # With a key, the dashboard asks to sign in first; the key opens it.
        signin = httpx.get(url + "/", follow_redirects=True)
        assert signin.url.path == "/login" and signin.headers["content-type"].startswith("text/html")
        page = httpx.get(url + "/", headers={"authorization": "Bearer k1"})
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        # Its detectors run in a worker process of their own.
        assert httpx.post(url + "/v1/ingest", json=batch(tool_loop_run("loop"), api_key="k1")).status_code == 202
        while not httpx.get(url + "/api/signals", headers={"authorization": "Bearer k1"}).json()["items"]:
            assert time.monotonic() < deadline + 30, "no signal from the judge process"
            time.sleep(0.1)
        [signal] = httpx.get(url + "/api/signals", headers={"authorization": "Bearer k1"}).json()["items"]
        assert (signal["run_id"], signal["detector"]) == ("loop", "TOOL_LOOP")
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert (tmp_path / "s.db").exists()
    assert "judge process failed" not in err and "Traceback" not in err, err


def test_missing_collector_extra_is_a_clear_message() -> None:
    code = (
        "import sys; sys.modules['starlette'] = None; sys.modules['uvicorn'] = None\n"
        "from dunetrace.cli import main\n"
        "assert main(['version']) == 0\n"
        "sys.exit(main(['serve']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1, result.stderr
    assert "pip install 'dunetrace[collector]'" in result.stderr
    code = code.replace("['serve']", "['demo', '--exit']")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1 and "pip install 'dunetrace[collector]'" in result.stderr


def test_the_cli_imports_no_collector_for_runs() -> None:
    code = (
        "import sys\n"
        "from dunetrace.cli import main\n"
        "main(['runs', '--url', 'http://127.0.0.1:9'])\n"
        "print(sorted(m for m in sys.modules if m.startswith(('starlette', 'uvicorn', 'dunetrace.collector'))))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert result.stdout.strip().splitlines()[-1] == "[]", result.stdout + result.stderr


def test_version_console_script() -> None:
    from dunetrace import __version__

    assert run_cli("version").stdout.strip() == __version__
