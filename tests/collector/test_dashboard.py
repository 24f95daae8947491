"""The dashboard in a real headless Chromium (Debian's ``chromium``): after
the example agent ran against the collector, its runs, its TOOL_LOOP
signal with the explanation, the run's timeline and the deploy marker are
on the page that the browser built from the JSON API."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from dunetrace import Dunetrace
from dunetrace.collector.server import BackgroundServer
from dunetrace.examples import manual_agent


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "headless Chromium is needed: apt-get install -y chromium"
    return found


def dom(url: str, profile: Path) -> str:
    """The page's DOM once its scripts ran (virtual time lets the fetches
    and a refresh happen without waiting in real time)."""
    result = subprocess.run(
        [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         f"--user-data-dir={profile}", "--virtual-time-budget=4000", "--dump-dom", url],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture
def judged(collector: BackgroundServer) -> tuple[str, str]:
    dt = Dunetrace(endpoint=collector.url, flush_interval=0.05)
    dt.mark_deploy(manual_agent.AGENT_ID, "v2-deploy-marker")
    manual_agent.main(dt)
    assert dt.shutdown(5)
    assert collector.collector.judge.wait_idle(10)
    store = collector.collector.store
    [looping] = store.runs(manual_agent.AGENT_ID, True, 10, 0)[0]
    [healthy] = store.runs(manual_agent.AGENT_ID, False, 10, 0)[0]
    return looping["run_id"], healthy["run_id"]


def test_runs_and_the_tool_loop_are_visible(collector: BackgroundServer, judged: tuple[str, str],
                                           tmp_path: Path) -> None:  # fmt: skip
    looping, healthy = judged
    page = dom(collector.url + "/", tmp_path / "profile")
    # Both runs are rows of the runs table.
    assert re.search(rf'<tr class="run" data-run-id="{looping}"', page)
    assert re.search(rf'<tr class="run" data-run-id="{healthy}"', page)
    # The signal, with its explanation, names the looping run.
    card = page.find(f'<div class="signal HIGH" data-detector="TOOL_LOOP" data-run-id="{looping}">')
    assert card >= 0, page[:3000]
    explained = page[card:card + 3000]
    assert "What happened" in explained and "search_flights" in explained
    assert "Why it matters" in explained and "What to try" in explained
    # The agent and the deploy marker.
    assert f'data-agent-id="{manual_agent.AGENT_ID}"' in page
    assert "deploy v2-deploy-marker" in page
    assert "cannot reach the collector" not in page


def test_a_runs_timeline(collector: BackgroundServer, judged: tuple[str, str], tmp_path: Path) -> None:
    looping, _ = judged
    page = dom(f"{collector.url}/#run={looping}", tmp_path / "profile")
    detail = page[page.index('<section id="detail"'):]
    assert detail.startswith('<section id="detail">')  # shown, no longer hidden
    assert f'data-run-id="{looping}"' in detail
    steps = re.findall(r'<li class="(flagged)?" data-event-type="([a-z.]+)">', detail)
    kinds = [kind for _, kind in steps]
    assert kinds[0] == "run.started" and kinds[-1] == "run.completed"
    assert kinds.count("tool.called") == 4
    assert any(flagged for flagged, _ in steps)  # the signal's step is marked
    assert 'data-detector="TOOL_LOOP"' in detail
