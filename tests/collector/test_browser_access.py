"""The browser points of access.py, in a real headless Chromium: a page of
another site (a second local server, on another port) cannot post events,
deploy markers or anything else to a dev-mode collector; a name rebound
to 127.0.0.1 (DNS rebinding) gets nothing; and with a key the dashboard
signs in once and keeps an HttpOnly cookie its scripts cannot read."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from dunetrace.collector.server import BackgroundServer

from .browser import launched
from .wire import batch, tool_loop_run

ATTACK = """<!doctype html><html><body>
<form id="form" method="post" enctype="text/plain" target="sink" action="{target}/v1/ingest">
<input name='{{"api_key":"","agent_id":"x","events":[],"pad":"' value='"}}'></form>
<iframe name="sink"></iframe>
<script>
const target = "{target}";
const body = JSON.stringify({body});
const tries = [
  // simple requests: a browser sends these to another site without asking
  fetch(target + "/v1/ingest", {{method: "POST", mode: "no-cors", body, headers: {{"content-type": "text/plain"}}}}),
  fetch(target + "/v1/ingest", {{method: "POST", mode: "no-cors", body: new Blob([body])}}),
  fetch(target + "/v1/deploy", {{method: "POST", mode: "no-cors",
        body: JSON.stringify({{agent_id: "x", version: "evil"}}), headers: {{"content-type": "text/plain"}}}}),
  // a JSON body needs a CORS preflight, which the collector never grants
  fetch(target + "/v1/ingest", {{method: "POST", body, headers: {{"content-type": "application/json"}}}}),
  // reading: refused by the browser, the answer has no CORS grant
  fetch(target + "/api/runs").then(r => r.text()),
];
document.getElementById("form").submit();
window.done = Promise.allSettled(tries).then(rs => rs.map(r => r.status));
</script></body></html>"""


@pytest.fixture
def other_site() -> Iterator[Callable[[str], str]]:
    """A second local server, on a port of its own: ``serve(html)`` gives
    the URL of a page with that HTML."""
    pages: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = pages.get(self.path)
            self.send_response(200 if page else 404)
            self.send_header("content-type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(page or b"")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(html: str) -> str:
        path = f"/page{len(pages)}.html"
        pages[path] = html.encode()
        return f"http://127.0.0.1:{server.server_port}{path}"

    yield serve
    server.shutdown()
    server.server_close()


def test_a_page_of_another_site_cannot_write(
    collector: BackgroundServer, other_site: Callable[[str], str], caplog: pytest.LogCaptureFixture
) -> None:
    import json

    page = other_site(ATTACK.format(target=collector.url, body=json.dumps(batch(tool_loop_run("from-evil")))))
    with caplog.at_level(logging.WARNING, logger="dunetrace.collector"), launched() as browser:
        tab = browser.new_page()
        tab.goto(page)
        outcomes = tab.evaluate("window.done")
        time.sleep(0.5)  # the form's post
    assert outcomes[-1] == "rejected" and outcomes[-2] == "rejected"  # no CORS grant, nothing read
    store = collector.collector.store
    assert store.count_events() == 0 and store.run("from-evil") is None
    assert store.deploys(None, 10, 0)[1] == 0
    # The collector saw the simple requests and refused them itself (the
    # browser sent them: the page just cannot read the answers).
    refusals = [r for r in caplog.records if getattr(r, "refused", None) == "cross_site"]
    assert len(refusals) >= 4, [r.getMessage() for r in caplog.records]
    assert {r.path for r in refusals} == {"/v1/ingest", "/v1/deploy"}
    # The same body from a client that is not a browser page is stored.
    assert httpx.post(collector.url + "/v1/ingest", json=batch(tool_loop_run("from-sdk"))).status_code == 202


def test_a_rebound_name_gets_nothing(collector: BackgroundServer) -> None:
    httpx.post(collector.url + "/v1/ingest", json=batch(tool_loop_run("secret-run")))
    with launched("--host-resolver-rules=MAP rebound.test 127.0.0.1") as browser:
        page = browser.new_page()
        page.goto(f"http://rebound.test:{collector.port}/api/runs")
        text = page.evaluate("document.body.innerText")
        assert "is not allowed" in text and "secret-run" not in text
        status = page.evaluate(
            "fetch('/v1/ingest', {method: 'POST', headers: {'content-type': 'application/json'},"
            " body: JSON.stringify({api_key: '', agent_id: 'x', events: []})}).then(r => r.status)"
        )
        assert status == 400
        # The same browser reaching it by its address reads it.
        page.goto(f"{collector.url}/api/runs")
        assert "secret-run" in page.evaluate("document.body.innerText")


def test_the_dashboard_signs_in_once(start_collector: Callable[..., BackgroundServer]) -> None:
    server = start_collector(api_keys=frozenset({"team-key"}))
    httpx.post(server.url + "/v1/ingest", json=batch(tool_loop_run("signed-in-run"), api_key="team-key"))
    assert server.collector.judge.wait_idle(10)
    with launched() as browser:
        context = browser.new_context()
        page = context.new_page()
        page.goto(server.url + "/")
        assert page.evaluate("location.pathname") == "/login"
        page.fill("#key", "wrong")
        with page.expect_navigation():
            page.evaluate("document.forms[0].submit()")
        assert not context.cookies()
        page.goto(server.url + "/login")
        page.fill("#key", "team-key")
        with page.expect_navigation():
            page.evaluate("document.forms[0].submit()")
        page.wait_for_url(server.url + "/", timeout=15_000)
        # The cookie is HttpOnly (scripts cannot read it), and the API answers the page.
        [cookie] = context.cookies()
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
        assert page.evaluate("document.cookie") == ""
        assert page.evaluate("fetch('/api/runs').then(r => r.status)") == 200
        # Polled from here: the page's Content-Security-Policy refuses the
        # string evaluation Playwright's wait_for_function does in the page.
        deadline = time.monotonic() + 15
        while "signed-in-run" not in page.evaluate("document.body.innerHTML"):
            assert time.monotonic() < deadline, "the dashboard did not show the run"
            time.sleep(0.2)
        assert "cannot reach the collector" not in page.evaluate("document.body.innerText")
        # A new visit in the same browser needs no second sign-in.
        page.goto(server.url + "/")
        assert page.evaluate("location.pathname") == "/"
