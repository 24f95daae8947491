"""The README's dashboard screenshots, from a real ``dunetrace demo``.

    python scripts/dashboard_screenshots.py      # writes docs/screenshots/*.png

Starts ``dunetrace demo`` (which keeps its collector serving), marks a
deploy of the looping agent and runs it once more, then opens each page in
Debian's chromium through Playwright (``pip install -e '.[test]'``) and
saves it; Ctrl-C ends the demo.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def start_demo(db: str) -> tuple[subprocess.Popen[str], str, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "dunetrace.cli", "demo", "--db", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    out = ""
    while "until Ctrl-C" not in out:
        line = process.stdout.readline()
        if not line:
            raise SystemExit(f"dunetrace demo ended early:\n{out}")
        out += line
    url = re.findall(r"Dashboard: (http://127\.0\.0\.1:\d+)/", out)[0]
    loop = re.findall(r"The loop, step by step: \S+#run=([^&\s]+)", out)[0]
    return process, url, loop


def get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def main() -> int:
    from playwright.sync_api import sync_playwright

    process, url, loop = start_demo(os.path.join(tempfile.mkdtemp(prefix="dunetrace-shots-"), "demo.db"))
    try:
        body = json.dumps(
            {
                "api_key": "",
                "agent_id": "manual-agent",
                "version": "v2",
                "meta": {"git": "4f2c1e9", "change": "search tool returns a reason"},
            }
        ).encode()
        urllib.request.urlopen(urllib.request.Request(url + "/v1/deploy", body, {"content-type": "application/json"}))
        env = {**os.environ, "DUNETRACE_ENDPOINT": url}
        subprocess.run(
            [sys.executable, "-m", "dunetrace.examples.manual_agent"], env=env, check=True, capture_output=True
        )
        time.sleep(1.5)  # judged
        [crew] = [r["run_id"] for r in get(url + "/api/agents/research-crew/runs")["items"]][:1]
        shots = [
            ("agent.png", "agent=manual-agent&range=1h", 1280, 800),
            ("run-loop.png", f"run={loop}&flag=TOOL_LOOP", 1280, 800),
            ("run-tree.png", f"run={crew}", 1280, 800),
            ("signals.png", "view=signals", 1280, 800),
            ("agent-narrow.png", "agent=manual-agent&range=1h", 390, 844),
        ]
        OUT.mkdir(parents=True, exist_ok=True)
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            for name, fragment, width, height in shots:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(f"{url}/#{fragment}")
                page.wait_for_function("() => document.getElementById('status').textContent.startsWith('live')")
                page.wait_for_timeout(500)
                page.screenshot(path=str(OUT / name))
                page.close()
                print(f"{OUT / name}: {(OUT / name).stat().st_size // 1024} KiB")
            browser.close()
    finally:
        process.send_signal(signal.SIGINT)
        process.communicate(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
