"""The signals page (filters, links to the steps, live signals marked), live
updates and paging without a reload, and every page at 1280x800 and on a
phone-sized screen, in headless Chromium (fixtures in test_dashboard.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from dunetrace import Dunetrace
from dunetrace.collector.server import BackgroundServer

from .test_dashboard import AGENT, Seeded, api, browser, close, open_page, seeded

#: The fixtures these tests share with test_dashboard.py.
SHARED_FIXTURES = (browser, open_page, seeded)
# The pagers print their ranges with an en dash ("1\u201325 of 30").
DASH = "\u2013"


def cards(page: Any) -> list[list[str]]:
    return page.eval_on_selector_all(
        "#signal-list .signal",
        "cs => cs.map((c) => [c.dataset.detector, c.dataset.runId, c.dataset.live, c.innerText])",
    )


def wait_for_cards(page: Any, count: int) -> None:
    page.wait_for_function(f"() => document.querySelectorAll('#signal-list .signal').length === {count}", timeout=10000)


def test_signals_page_filters_and_links_to_the_steps(
    collector: BackgroundServer, seeded: Seeded, open_page: Callable[..., Any]
) -> None:
    page = open_page("view=signals")
    everything = api(collector, "/api/signals?limit=100")
    assert everything["total"] >= 2
    wait_for_cards(page, everything["total"])
    shown = cards(page)
    assert [(d, r) for d, r, *_ in shown] == [(s["detector"], s["run_id"]) for s in everything["items"]]
    # Live signals (sent by the SDK during the run) are marked in words; the
    # others say they were found after the run.
    for (_, _, live, text), item in zip(shown, everything["items"], strict=True):
        assert live == ("true" if item.get("live") is True else "false")
        assert ("LIVE, found during the run" in text) == (item.get("live") is True)
        assert ("found after the run" in text) == (item.get("live") is not True)
    # Filters: agent, type, severity, time; each as the API answers it.
    page.select_option("#signal-filters select[name=agent]", AGENT)
    expected = api(collector, f"/api/signals?agent_id={AGENT}")["total"]
    wait_for_cards(page, expected)
    assert {c[1] for c in cards(page)} <= {seeded.looping, seeded.errored}
    page.select_option("#signal-filters select[name=type]", "TOOL_LOOP")
    loops = api(collector, f"/api/signals?agent_id={AGENT}&type=TOOL_LOOP")["items"]
    wait_for_cards(page, len(loops))
    assert [c[:2] for c in cards(page)] == [["TOOL_LOOP", seeded.looping]] * len(loops)
    page.select_option("#signal-filters select[name=severity]", "LOW")
    page.wait_for_selector("#signal-list .empty")
    assert "No signals match" in page.inner_text("#signal-list")
    page.select_option("#signal-filters select[name=severity]", "HIGH")
    page.select_option("#signal-filters select[name=since]", "1h")
    wait_for_cards(page, len(loops))
    assert "since=1h" in page.evaluate("() => location.hash")
    assert api(collector, f"/api/signals?agent_id={AGENT}&type=TOOL_LOOP&since={time.time() + 60:.0f}")["total"] == 0
    # The signal links to its steps: the run page opens with all of them marked.
    [loop] = [s for s in loops if not s.get("live")]
    link = page.locator("#signal-list .signal[data-live=false] .steps-link")
    assert link.inner_text() == "steps " + ", ".join(str(s) for s in loop["evidence"]["steps"])
    link.click()
    page.wait_for_selector(".wf-row.focus")
    focused = page.eval_on_selector_all(".wf-row.focus", "rs => rs.map((r) => [+r.dataset.step, r.innerText])")
    assert set(loop["evidence"]["steps"]) <= {step for step, _ in focused}
    assert all("⚑ TOOL_LOOP" in text for _, text in focused)


def test_new_runs_appear_without_a_reload_and_long_lists_page(
    collector: BackgroundServer, open_page: Callable[..., Any]
) -> None:
    page = open_page("agent=paged-agent&range=1h")
    assert page.inner_text("#runs tbody") == "No runs yet."
    page.evaluate("() => { window.notReloaded = true; }")
    dt = Dunetrace(endpoint=collector.url, flush_interval=0.05)
    for i in range(30):
        with dt.run("paged-agent", model="fake-model-1") as run:
            step = run.llm_called("fake-model-1", prompt_tokens=10 + i)
            run.llm_responded(completion_tokens=3, latency_ms=1.5, finish_reason="stop", step=step)
    assert dt.shutdown(5)
    # Within a few polls the table shows the newest 25 and a pager, the chart all 30.
    page.wait_for_function("() => document.querySelectorAll('#runs tr.run').length === 25", timeout=15000)
    page.wait_for_function("() => DT.chart.data[1].reduce((a, b) => a + b, 0) === 30", timeout=15000)
    assert page.evaluate("() => window.notReloaded") is True
    assert f"1{DASH}25 of 30" in page.inner_text("#runs-pager")
    page.click("#runs-pager button.next")
    page.wait_for_function("() => document.querySelectorAll('#runs tr.run').length === 5")
    assert f"26{DASH}30 of 30" in page.inner_text("#runs-pager")
    listed = page.eval_on_selector_all("#runs tr.run", "rs => rs.map((r) => r.dataset.runId)")
    assert listed == [r["run_id"] for r in api(collector, "/api/agents/paged-agent/runs?limit=25&offset=25")["items"]]
    assert page.evaluate("() => window.notReloaded") is True


def test_every_page_fits_a_laptop_and_a_phone(
    collector: BackgroundServer, seeded: Seeded, open_page: Callable[..., Any]
) -> None:
    pages = [f"agent={AGENT}", f"run={seeded.parent}", f"run={seeded.looping}", "view=signals"]
    for width, height in ((1280, 800), (390, 844)):
        for fragment in pages:
            page = open_page(fragment, width, height)
            page.wait_for_selector("#chart .uplot, .wf-row.step, #signal-list .signal")
            # Nothing wider than the screen: no sideways scrolling of the page.
            assert page.evaluate("() => document.documentElement.scrollWidth") <= width, (fragment, width)
            if fragment.startswith("agent"):
                box = page.locator("#chart canvas").bounding_box()
                assert box is not None and box["width"] <= width - 20
            if fragment.startswith("run"):
                bars = page.eval_on_selector_all(
                    ".wf-row.step .wf-bar", "bs => bs.map((b) => b.getBoundingClientRect().right)"
                )
                assert bars and max(bars) <= width, (fragment, width)
            # Readable without colour: every step row says its kind in words.
            kinds = page.eval_on_selector_all(".wf-row.step .kind", "ks => ks.map((k) => k.textContent)")
            assert set(kinds) <= {"LLM", "TOOL", "RETR"}
            close(page)


def test_a_long_run_pages_its_waterfall_and_a_step_link_opens_its_page(
    collector: BackgroundServer, open_page: Callable[..., Any]
) -> None:
    dt = Dunetrace(endpoint=collector.url, flush_interval=0.05)
    with dt.run("long-agent", model="fake-model-1", tools=["fetch"]) as run:
        for i in range(250):
            step = run.tool_called("fetch", {"page": i})
            run.tool_responded("fetch", True, latency_ms=0.5 + i, step=step)
    assert dt.shutdown(5)
    assert collector.collector.judge.wait_idle(10)
    steps = [
        e["step_index"] for e in api(collector, f"/api/runs/{run.run_id}")["events"] if e["event_type"] == "tool.called"
    ]
    assert len(steps) == 250
    page = open_page(f"run={run.run_id}")
    page.wait_for_selector(".wf-row.step")
    # 251 rows (the run's own and one per call): 200 on the first page.
    assert page.locator(".wf-row:not(.axis)").count() == 200
    assert f"1{DASH}200 of 251" in page.inner_text("#waterfall-pager")
    page.click("#waterfall-pager button.next")
    page.wait_for_function("() => document.querySelectorAll('.wf-row.step').length === 51")
    assert page.eval_on_selector_all(".wf-row.step", "rs => rs.map((r) => +r.dataset.step)") == steps[199:]
    # A link to a step on the second page opens that page with the step marked.
    target = steps[240]
    page.goto(f"{collector.url}/#run={run.run_id}&step={target}")
    page.wait_for_selector(f".wf-row.focus[data-step='{target}']")
    assert page.locator(".wf-row.focus").count() == 1
    assert f"201{DASH}251 of 251" in page.inner_text("#waterfall-pager")


def test_the_agents_list_pages(collector: BackgroundServer, open_page: Callable[..., Any]) -> None:
    dt = Dunetrace(endpoint=collector.url, flush_interval=0.05)
    for i in range(35):
        with dt.run(f"agent-{i:02d}", model="fake-model-1") as run:
            step = run.llm_called("fake-model-1", prompt_tokens=10)
            run.llm_responded(completion_tokens=3, latency_ms=1.0, finish_reason="stop", step=step)
    assert dt.shutdown(5)
    page = open_page("")
    page.wait_for_function("() => document.querySelectorAll('#agents li[data-agent-id]').length === 30")
    assert f"1{DASH}30 of 35" in page.inner_text("#agents-pager")
    first = page.eval_on_selector_all("#agents li[data-agent-id]", "ls => ls.map((l) => l.dataset.agentId)")
    assert first == [a["agent_id"] for a in api(collector, "/api/agents?limit=30")["items"]]
    page.click("#agents-pager button.next")
    page.wait_for_function("() => document.querySelectorAll('#agents li[data-agent-id]').length === 5")
    rest = page.eval_on_selector_all("#agents li[data-agent-id]", "ls => ls.map((l) => l.dataset.agentId)")
    assert sorted(first + rest) == [f"agent-{i:02d}" for i in range(35)]


def test_a_link_to_a_run_the_collector_does_not_have(
    collector: BackgroundServer, open_page: Callable[..., Any]
) -> None:
    open_page.allow("404 (Not Found)")  # type: ignore[attr-defined]  # the browser logs the API's 404
    page = open_page("run=no-such-run")
    page.wait_for_function("() => document.getElementById('run-title').textContent.startsWith('No run')")
    assert page.inner_text("#run-title") == "No run no-such-run in this collector."
    assert page.locator(".wf-row").count() == 0
    assert page.inner_text("#status").startswith("live")


def test_a_signal_about_a_span_marks_every_call_in_it(
    collector: BackgroundServer, open_page: Callable[..., Any]
) -> None:
    dt = Dunetrace(endpoint=collector.url, flush_interval=0.05)
    with dt.run("thrashing-agent", model="fake-model-1", tools=["read", "write"]) as run:
        step = run.llm_called("fake-model-1", prompt_tokens=10)
        run.llm_responded(completion_tokens=3, latency_ms=1.0, finish_reason="tool_calls", step=step)
        for i in range(6):
            name = ("read", "write")[i % 2]
            call = run.tool_called(name, {"i": i})
            run.tool_responded(name, True, latency_ms=2.0, step=call)
    assert dt.shutdown(5)
    assert collector.collector.judge.wait_idle(10)
    detail = api(collector, f"/api/runs/{run.run_id}")
    [thrash] = [s for s in detail["signals"] if s["detector"] == "TOOL_THRASHING"]
    assert "steps" not in thrash["evidence"]  # a span: first_step .. last_step
    tool_steps = [e["step_index"] for e in detail["events"] if e["event_type"] == "tool.called"]
    page = open_page(f"run={run.run_id}")
    page.wait_for_selector(".wf-row.flagged")
    marked = page.eval_on_selector_all(
        ".wf-row.step", "rs => rs.filter((r) => r.innerText.includes('⚑ TOOL_THRASHING')).map((r) => +r.dataset.step)"
    )
    span = range(thrash["evidence"]["first_step"], thrash["evidence"]["last_step"] + 1)
    assert marked == [s for s in tool_steps if s in span] and len(marked) == 6
