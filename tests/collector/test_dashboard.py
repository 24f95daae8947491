"""The dashboard in a real headless Chromium (Debian's ``chromium``, driven
by Playwright), under a strict Content-Security-Policy: after real SDK runs
reached the collector, the agent chart, the deploy markers, the run
waterfall and its tree show what is stored, and nothing on any page logs a
console error. More pages in test_dashboard_pages.py."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from dunetrace import Dunetrace
from dunetrace.collector.server import BackgroundServer
from dunetrace.examples import manual_agent
from dunetrace.live import Signal

from .browser import launched

#: What the collector is to send once the exposed-collector work lands; the
#: pages must already work under it (no inline script or style, no eval).
CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'"
AGENT = manual_agent.AGENT_ID


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with launched() as found:
        yield found


def close(page: Any) -> None:
    """Closes a page whose polls may be on their way: their routes are
    dropped first, so a fetch cut short is no error."""
    if not page.is_closed():
        page.unroute_all(behavior="ignoreErrors")
        page.close()


@pytest.fixture
def open_page(browser: Any, collector: BackgroundServer) -> Iterator[Callable[..., Any]]:
    """Opens a page of the dashboard (the part after ``#``) once it drew;
    every console error or page error of any page fails the test."""
    errors: list[str] = []
    pages: list[Any] = []

    def with_csp(route: Any) -> None:
        response = route.fetch()
        route.fulfill(response=response, headers={**response.headers, "content-security-policy": CSP})

    def open_(fragment: str = "", width: int = 1280, height: int = 800) -> Any:
        page = browser.new_page(viewport={"width": width, "height": height})
        pages.append(page)
        page.on("console", lambda m: errors.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        page.route("**/*", with_csp)
        page.goto(f"{collector.url}/#{fragment}")
        page.wait_for_function("() => document.getElementById('status').textContent.startsWith('live')", timeout=15000)
        return page

    allowed: list[str] = []
    open_.allow = allowed.append  # type: ignore[attr-defined]  # a test that expects an error names it
    yield open_
    for page in pages:
        close(page)
    unexpected = [e for e in errors if not any(a in e for a in allowed)]
    assert unexpected == [], unexpected


@dataclass
class Seeded:
    looping: str
    healthy: str
    errored: str
    parent: str
    child: str


def seed(collector: BackgroundServer) -> Seeded:
    """Real runs through the SDK: the example agent (a healthy run and a
    tool loop), two deploys, a run of a new version that errors, and a run
    whose tool runs a child agent (a retrieval, a failing tool) and that
    fires a live signal."""
    dt = Dunetrace(endpoint=collector.url, flush_interval=0.05)
    dt.mark_deploy(AGENT, "v1", git="abc123")
    manual_agent.main(dt)
    dt.mark_deploy(AGENT, "v2", git="def456")
    time.sleep(0.01)
    with contextlib.suppress(RuntimeError), dt.run(AGENT, system_prompt="v2", model="fake-model-2") as run:
        step = run.llm_called("fake-model-2", prompt_tokens=50)
        run.llm_responded(completion_tokens=7, latency_ms=12.5, finish_reason="length", step=step)
        raise RuntimeError("the model gave up")
    with dt.run("planner", model="fake-model-1", tools=["research"]) as parent:
        step = parent.llm_called("fake-model-1", prompt_tokens=40)
        parent.llm_responded(completion_tokens=5, latency_ms=20.0, finish_reason="tool_calls", step=step)
        tool = parent.tool_called("research", {"topic": "flights"})
        with dt.run("planner.researcher", model="fake-model-1", tools=["lookup"]) as child:
            found = child.retrieval_called("docs", "flights")
            child.retrieval_responded("docs", 0, None, 8.0, step=found)
            call = child.tool_called("lookup", {"id": 1})
            child.tool_responded("lookup", False, latency_ms=3.0, error="not found", step=call)
        parent.tool_responded("research", True, latency_ms=40.0, step=tool)
        parent.fire(Signal("TOOL_LOOP", "HIGH", 0.9, tool, {"steps": [tool], "tool": "research"}))
        step = parent.llm_called("fake-model-1", prompt_tokens=90)
        parent.llm_responded(completion_tokens=9, latency_ms=15.0, finish_reason="stop", step=step)
        parent.final_answer()
    assert dt.shutdown(5)
    assert collector.collector.judge.wait_idle(10)
    store = collector.collector.store
    [looping] = {s["run_id"] for s in store.signals(agent_id=AGENT, detector="TOOL_LOOP")[0]}
    [healthy] = store.runs(AGENT, False, 10, 0)[0]
    [errored] = [r for r in store.runs(AGENT, None, 10, 0)[0] if r["end_type"] == "run.errored"]
    return Seeded(looping, healthy["run_id"], errored["run_id"], parent.run_id, child.run_id)


@pytest.fixture
def seeded(collector: BackgroundServer) -> Seeded:
    return seed(collector)


def api(collector: BackgroundServer, path: str) -> Any:
    response = httpx.get(collector.url + path, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def test_agent_chart_draws_the_stored_runs_rates_and_deploys(
    collector: BackgroundServer, seeded: Seeded, open_page: Callable[..., Any]
) -> None:
    page = open_page(f"agent={AGENT}&range=1h")
    page.wait_for_selector("#chart .uplot canvas")
    store = collector.collector.store
    runs = sorted(store.runs(AGENT, None, 100, 0)[0], key=lambda r: r["first_ts"])
    signals = store.signals(agent_id=AGENT)[0]
    detectors = sorted({s["detector"] for s in signals})
    assert "TOOL_LOOP" in detectors
    labels = page.evaluate("() => DT.chart.series.map((s) => s.label)")
    assert labels[1:] == ["Runs", "Error rate %", *(f"{d} %" for d in detectors)]
    data = page.evaluate("() => DT.chart.data")
    assert len(data[0]) == 60  # an hour of minutes
    assert sum(n or 0 for n in data[1]) == len(runs) == 3
    [bucket] = [i for i, n in enumerate(data[1]) if n]
    assert data[2][bucket] == pytest.approx(100 / 3, abs=0.01)  # one of three runs errored
    for i, detector in enumerate(detectors):
        flagged = {s["run_id"] for s in signals if s["detector"] == detector}
        assert data[3 + i][bucket] == pytest.approx(100 * len(flagged) / 3, abs=0.01)
    # A line and a label per deploy, version and meta on hover.
    deploys = store.deploys(AGENT, 10, 0)[0]
    shown = page.eval_on_selector_all(".marker.deploy", "ms => ms.map((m) => [m.dataset.version, m.title])")
    assert sorted(v for v, _ in shown) == sorted(d["version"] for d in deploys) == ["v1", "v2"]
    assert all(f"deploy {v} of {AGENT}" in title for v, title in shown)
    assert any('"git":"def456"' in title for v, title in shown if v == "v2")
    # And a marker where the agent's version changed (its first version too).
    changes = [
        r["agent_version"] for i, r in enumerate(runs) if i == 0 or runs[i - 1]["agent_version"] != r["agent_version"]
    ]
    assert page.eval_on_selector_all(".marker.version", "ms => ms.map((m) => m.dataset.version)") == changes
    assert page.locator("#marker-list li").count() == len(deploys) + len(changes)
    # The pointer on a deploy's line moves the chart's cursor there, and the
    # legend shows that bucket's values.
    line = page.locator(".marker.deploy[data-version='v2']").bounding_box()
    assert line is not None
    page.mouse.move(line["x"] + line["width"] / 2, line["y"] + line["height"] * 0.7)
    page.wait_for_function("() => DT.chart.cursor.idx !== null && DT.chart.cursor.idx !== undefined")
    idx = page.evaluate("() => DT.chart.cursor.idx")
    legend = page.inner_text(".u-legend")
    assert f"Runs{data[1][idx] or '--'}" in legend.replace(":", "").replace("\t", "").replace(" ", "").replace("\n", "")
    # The newest signals of the agent, at a glance, linking to their steps.
    newest = api(collector, f"/api/agents/{AGENT}/signals?limit=3")["items"]
    latest = page.eval_on_selector_all(
        "#latest-signals .signal", "cs => cs.map((c) => [c.dataset.detector, c.dataset.runId])"
    )
    assert latest == [[s["detector"], s["run_id"]] for s in newest]
    assert page.locator("#latest-signals .signal[data-detector='TOOL_LOOP'] .steps-link").count() == 1
    # The range picker: 24 h of half hours.
    page.click(".range-picker button[data-range='24h']")
    page.wait_for_function("() => DT.chart.data[0].length === 48")
    assert page.get_attribute(".range-picker button[data-range='24h']", "aria-pressed") == "true"
    assert "range=24h" in page.evaluate("() => location.hash")
    assert sum(n or 0 for n in page.evaluate("() => DT.chart.data")[1]) == 3
    assert page.inner_text("#chart-note").startswith("3 runs · 1 errored · ")
    assert "TOOL_LOOP in 1" in page.inner_text("#chart-note")


def test_run_waterfall_has_a_bar_per_step_with_measured_latency_and_the_loop_marked(
    collector: BackgroundServer, seeded: Seeded, open_page: Callable[..., Any]
) -> None:
    detail = api(collector, f"/api/runs/{seeded.looping}")
    page = open_page(f"run={seeded.looping}")
    page.wait_for_selector(f".wf-row.step[data-run-id='{seeded.looping}']")
    calls = [e for e in detail["events"] if e["event_type"].endswith(".called")]
    answers = {
        (e["event_type"].split(".")[0], e["step_index"]): e["payload"]
        for e in detail["events"]
        if e["event_type"].endswith(".responded")
    }
    rows = page.eval_on_selector_all(
        ".wf-row.step",
        "rs => rs.map((r) => [r.dataset.kind, +r.dataset.step, r.dataset.latencyMs, r.title,"
        " r.querySelector('.wf-value').textContent, r.classList.contains('flagged'),"
        " r.querySelector('.wf-bar').offsetWidth])",
    )
    assert [(kind, step) for kind, step, *_ in rows] == [
        (e["event_type"].split(".")[0], e["step_index"]) for e in calls
    ]
    for kind, step, latency, title, text, _, width in rows:
        measured = answers[(kind, step)]["latency_ms"]
        assert float(latency) == pytest.approx(measured)
        assert width >= 3  # even a microsecond is a visible bar
        if kind == "tool":
            # The example's tool answers in microseconds: shown as such, not "0 ms".
            assert measured < 1 and text.endswith("µs") and text != "0 ms", text
        else:
            assert "prompt tokens" in title and "completion tokens" in title and "finish reason" in title
    # Every call of the loop is marked, not only the step the signal names.
    about = sorted({step for s in detail["signals"] for step in s["evidence"].get("steps", [s["step_index"]])})
    assert sorted(row[1] for row in rows if row[5]) == about
    [loop] = [s for s in detail["signals"] if s["detector"] == "TOOL_LOOP" and not s.get("live")]
    assert len(loop["evidence"]["steps"]) == 4 and set(loop["evidence"]["steps"]) <= set(about)
    assert page.locator(".wf-row.flagged .flag-tag").first.inner_text() == "⚑ TOOL_LOOP"
    # The run's signal, explained, below.
    card = page.locator(f"#run-signals .signal[data-detector='TOOL_LOOP'][data-run-id='{seeded.looping}']")
    assert "What happened" in card.inner_text() and "search_flights" in card.inner_text()


def test_child_runs_are_a_tree_with_their_own_bars(
    collector: BackgroundServer, seeded: Seeded, open_page: Callable[..., Any]
) -> None:
    page = open_page(f"run={seeded.parent}")
    page.wait_for_selector(f".wf-row.run[data-run-id='{seeded.child}']")
    runs = page.eval_on_selector_all(".wf-row.run", "rs => rs.map((r) => [r.dataset.runId, +r.dataset.depth])")
    assert runs == [[seeded.parent, 0], [seeded.child, 1]]
    for run_id in (seeded.parent, seeded.child):
        events = api(collector, f"/api/runs/{run_id}")["events"]
        called = [e for e in events if e["event_type"].endswith(".called")]
        assert page.locator(f".wf-row.step[data-run-id='{run_id}']").count() == len(called)
    # The child sits under the parent's tool call that ran it, its rows indented.
    order = page.eval_on_selector_all(
        ".wf-row:not(.axis)", "rs => rs.map((r) => r.dataset.runId + ':' + (r.dataset.kind || r.className))"
    )
    research = order.index(f"{seeded.parent}:tool")
    assert order[research + 1].startswith(f"{seeded.child}:") and "run" in order[research + 1]
    child_rows = page.locator(f".wf-row.step[data-run-id='{seeded.child}']")
    assert child_rows.nth(0).inner_text().split("\n")[1:3] == ["RETR", "docs"]
    failed = page.locator(f".wf-row.step.failed[data-run-id='{seeded.child}']")
    assert failed.count() == 1 and "✗ failed" in failed.inner_text() and "lookup" in failed.inner_text()
    # The live signal the SDK sent during the run is a marked row of its own.
    live = page.locator(f".wf-row.event[data-run-id='{seeded.parent}']")
    assert live.count() == 1 and "● LIVE signal TOOL_LOOP from dunetrace" in live.inner_text()
    assert "live" in (live.get_attribute("class") or "").split()
    # The child's signals are listed on the parent's page, linking to the child.
    child_signals = api(collector, f"/api/runs/{seeded.child}")["signals"]
    assert child_signals  # a failed first tool call, an empty retrieval
    for signal in child_signals:
        assert (
            page.locator(
                f"#run-signals .signal[data-run-id='{seeded.child}'][data-detector='{signal['detector']}']"
            ).count()
            == 1
        )
    facts = dict(
        page.eval_on_selector_all(
            "#run-facts > div", "ds => ds.map((d) => [d.children[0].textContent, d.children[1].textContent])"
        )
    )
    assert facts["Child runs"] == "1" and facts["Agent"] == "planner"
