"""``dunetrace demo`` leaves the dashboard open: the address it prints
answers (the page, and the runs the demo made) until Ctrl-C, which stops
the collector cleanly; ``--exit`` (test_cli.py) stops it at once."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx


def test_demo_keeps_serving_the_address_it_prints_until_ctrl_c(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "dunetrace.cli", "demo", "--db", str(tmp_path / "demo.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 150
        assert process.stdout is not None
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "until Ctrl-C" in line:
                break
        out = "".join(lines)
        assert "until Ctrl-C" in out and "--exit" in out, out
        [url] = re.findall(r"Dashboard: (http://127\.0\.0\.1:\d+)/", out)
        [loop] = re.findall(r"The loop, step by step: (\S+)", out)
        assert loop.startswith(url + "/#run=")
        time.sleep(1.0)  # still there a moment later: the demo is not tearing down
        assert process.poll() is None, out
        page = httpx.get(url + "/", timeout=10)
        assert page.status_code == 200 and "/static/app.js" in page.text
        runs = httpx.get(url + "/api/runs", timeout=10).json()
        assert runs["total"] >= 2
        run_id = loop.split("#run=")[1].split("&")[0]
        detail = httpx.get(f"{url}/api/runs/{run_id}", timeout=10).json()
        assert "TOOL_LOOP" in [s["detector"] for s in detail["signals"]]
        process.send_signal(signal.SIGINT)
        rest, _ = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, "".join(lines) + rest
    assert "Stopped." in rest and "Traceback" not in rest, rest
    try:
        httpx.get(url + "/health", timeout=2)
        raise AssertionError("the collector still answers after Ctrl-C")
    except httpx.HTTPError:
        pass


def test_sigterm_ends_the_serving_as_ctrl_c_does() -> None:
    from dunetrace.collector.demo import _serve_until_interrupted

    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
    started = time.monotonic()
    timer.start()
    _serve_until_interrupted()  # returns instead of the process dying
    assert 0.2 < time.monotonic() - started < 10
    assert signal.getsignal(signal.SIGTERM) is before  # put back as it was
