"""Who may read and write, against a real collector (uvicorn on 127.0.0.1):
with keys every route needs one (Bearer, or the dashboard's session
cookie); ``Host`` must be an allowed name; writes from another site and
bodies that are not JSON are refused, in dev mode too; every answer
carries the security headers; and the SDK still delivers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from dunetrace import Dunetrace
from dunetrace.collector.access import host_allowed
from dunetrace.collector.server import BackgroundServer, check_exposure
from dunetrace.collector.sessions import key_for_bearer, make_session, session_key
from dunetrace.collector.settings import Settings

from .wire import batch, tool_loop_run

KEY = "team-key-1"
READS = ["/", "/static/app.js", "/api/runs", "/api/agents", "/api/signals", "/api/deploys", "/openapi.json"]


@pytest.fixture
def keyed(start_collector: Callable[..., BackgroundServer]) -> BackgroundServer:
    return start_collector(api_keys=frozenset({KEY, "second-key"}))


def stored_events(server: BackgroundServer) -> int:
    return int(server.collector.store.count_events())


def test_every_route_needs_a_key(keyed: BackgroundServer) -> None:
    url = keyed.url
    for path in READS:
        answer = httpx.get(url + path)
        assert answer.status_code in (303, 401), (path, answer.status_code)
        if answer.status_code == 303:  # a page: to the sign-in page
            assert answer.headers["location"].startswith("/login?next=")
        else:
            assert answer.headers["www-authenticate"].startswith("Bearer")
        assert httpx.get(url + path, headers={"authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(url + path, headers={"authorization": f"Bearer {KEY}"}).status_code == 200, path
    # Writes: the key in the body (the contract) or as Bearer.
    body = batch(tool_loop_run("r1"))
    assert httpx.post(url + "/v1/ingest", json=body).status_code == 401
    assert httpx.post(url + "/v1/ingest", json={**body, "api_key": "nope"}).status_code == 401
    assert httpx.post(url + "/v1/deploy", json={"agent_id": "a", "version": "v"}).status_code == 401
    assert stored_events(keyed) == 0
    assert httpx.post(url + "/v1/ingest", json={**body, "api_key": KEY}).status_code == 202
    assert (
        httpx.post(
            url + "/v1/deploy", json={"agent_id": "a", "version": "v"}, headers={"authorization": "Bearer second-key"}
        ).status_code
        == 202
    )
    # /health stays open: load balancers probe it without a key.
    assert httpx.get(url + "/health").json()["status"] == "ok"


def test_the_sdk_delivers_with_its_key(keyed: BackgroundServer) -> None:
    sdk = Dunetrace(endpoint=keyed.url, api_key=KEY, flush_interval=0.05)
    with sdk.run("sdk-agent") as run:
        run.tool_called("search", {"q": "x"})
        run.tool_responded("search", success=True)
    assert sdk.shutdown(5)
    assert keyed.collector.store.run(run.run_id) is not None


def test_signing_in_gives_a_strict_http_only_cookie(keyed: BackgroundServer) -> None:
    url = keyed.url
    page = httpx.get(url + "/login?next=/%23run%3Dx")
    assert page.status_code == 200 and 'name="key"' in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    wrong = httpx.post(url + "/login", data={"key": "guess", "next": "/"}, headers={"origin": url})
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    signed = httpx.post(url + "/login", data={"key": KEY, "next": "//evil.example/"}, headers={"origin": url})
    assert signed.status_code == 303 and signed.headers["location"] == "/"  # never to another site
    cookie = signed.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain HTTP here; behind TLS it is Secure
    value = cookie.split(";")[0].split("=", 1)[1]
    jar = {"cookie": f"dunetrace_session={value}"}
    for path in READS:
        assert httpx.get(url + path, headers=jar).status_code == 200, path
    # A forged, altered or expired cookie opens nothing.
    expires, fingerprint, mac = value.split(".")
    for bad in (
        f"{int(expires) + 10}.{fingerprint}.{mac}",
        f"{expires}.{fingerprint}.{'0' * 64}",
        make_session(KEY, -10),
        make_session("not-a-key", 3600),
    ):
        assert httpx.get(url + "/api/runs", headers={"cookie": f"dunetrace_session={bad}"}).status_code == 401
    # A session cookie is for reading: it does not write events.
    body = batch(tool_loop_run("cookie-write"))
    assert httpx.post(url + "/v1/ingest", json=body, headers=jar).status_code == 401
    out = httpx.post(url + "/logout", headers={"origin": url, **jar})
    assert out.status_code == 303 and 'dunetrace_session=""' in out.headers["set-cookie"]


def test_behind_a_tls_proxy_the_cookie_is_secure(start_collector: Callable[..., BackgroundServer]) -> None:
    server = start_collector(api_keys=frozenset({KEY}), allowed_hosts=frozenset({"dunetrace.example.com"}))
    # What nginx on this machine passes on for https://dunetrace.example.com/login.
    proxied = {
        "host": "dunetrace.example.com",
        "x-forwarded-proto": "https",
        "x-forwarded-for": "203.0.113.9",
        "origin": "https://dunetrace.example.com",
        "sec-fetch-site": "same-origin",
    }
    signed = httpx.post(server.url + "/login", data={"key": KEY, "next": "/"}, headers=proxied)
    assert signed.status_code == 303
    assert "Secure" in signed.headers["set-cookie"] and "HttpOnly" in signed.headers["set-cookie"]


def test_sign_in_guesses_are_throttled(keyed: BackgroundServer) -> None:
    url = keyed.url
    with httpx.Client(headers={"origin": url}) as client:
        answers = [client.post(url + "/login", data={"key": f"guess-{i}"}).status_code for i in range(12)]
        assert answers == [401] * 10 + [429] * 2
        # Even the right key waits out the window from that address...
        assert client.post(url + "/login", data={"key": KEY}).status_code == 429
    # ...while the API, with its key, is not affected.
    assert httpx.get(url + "/api/runs", headers={"authorization": f"Bearer {KEY}"}).status_code == 200


def test_a_session_made_with_a_removed_key_ends(start_collector: Callable[..., BackgroundServer]) -> None:
    before = start_collector(api_keys=frozenset({KEY, "old-key"}))
    after = start_collector(api_keys=frozenset({KEY}))
    cookie = {"cookie": f"dunetrace_session={make_session('old-key', 3600)}"}
    assert httpx.get(before.url + "/api/runs", headers=cookie).status_code == 200
    assert httpx.get(after.url + "/api/runs", headers=cookie).status_code == 401


def test_hosts_that_are_not_allowed_are_refused(start_collector: Callable[..., BackgroundServer]) -> None:
    dev = start_collector()
    named = start_collector(allowed_hosts=frozenset({"dunetrace.internal"}))
    for host in ("evil.example", f"evil.example:{dev.port}", "localhost.evil.example", "127.0.0.1.nip.io"):
        answer = httpx.get(dev.url + "/api/runs", headers={"host": host})
        assert answer.status_code == 400, host
        assert "--allowed-host" in answer.json()["detail"]
        posted = httpx.post(dev.url + "/v1/ingest", json=batch(tool_loop_run("r")), headers={"host": host})
        assert posted.status_code == 400
    for host in ("localhost", f"localhost:{dev.port}", "127.0.0.1", "[::1]:8001", "10.1.2.3", "app.localhost"):
        assert httpx.get(dev.url + "/api/runs", headers={"host": host}).status_code == 200, host
    assert httpx.get(named.url + "/api/runs", headers={"host": "dunetrace.internal:443"}).status_code == 200
    assert httpx.get(named.url + "/api/runs", headers={"host": "other.internal"}).status_code == 400
    assert stored_events(dev) == 0


@given(st.text(max_size=40))
def test_a_host_is_allowed_only_as_a_listed_name_or_an_address(host: str) -> None:
    allowed = host_allowed(host, frozenset({"team.example"}))
    name = host.strip().lower()
    if allowed:
        bare = name[1 : name.find("]")] if name.startswith("[") else name.partition(":")[0]
        bare = bare.rstrip(".")
        import ipaddress

        try:
            ipaddress.ip_address(bare)
        except ValueError:
            assert bare in ("localhost", "team.example") or bare.endswith(".localhost"), host


@given(st.text(max_size=200), st.text(max_size=80))
def test_only_a_cookie_made_with_a_key_opens_a_session(cookie_header: str, bearer: str) -> None:
    keys = frozenset({KEY})
    assert session_key(cookie_header, keys) is None  # no guess is a session
    assert key_for_bearer(bearer, keys) is None
    made = make_session(KEY, 3600)
    assert session_key(f"{cookie_header}; dunetrace_session={made}", keys) == KEY
    assert key_for_bearer(f"Bearer {KEY}", keys) == KEY


def test_cross_site_writes_are_refused_in_dev_mode(collector: BackgroundServer) -> None:
    url = collector.url
    body = batch(tool_loop_run("xsite"))
    other = "http://127.0.0.1:1"  # another port: another origin
    refused = [
        ({"origin": other}, 403),
        ({"origin": "null"}, 403),
        ({"origin": "null", "sec-fetch-site": "cross-site"}, 403),
        ({"sec-fetch-site": "cross-site"}, 403),
        ({"sec-fetch-site": "same-site", "origin": other}, 403),
        ({"content-type": "text/plain"}, 415),
        ({"content-type": "application/x-www-form-urlencoded"}, 415),
        ({"content-type": "multipart/form-data; boundary=x"}, 415),
    ]
    import json

    raw = json.dumps(body).encode()
    for headers, status in refused:
        sent = {"content-type": "application/json", **headers}
        for path in ("/v1/ingest", "/v1/deploy"):
            answer = httpx.post(url + path, content=raw, headers=sent)
            assert answer.status_code == status, (path, headers, answer.text)
    assert stored_events(collector) == 0
    assert collector.collector.store.deploys(None, 10, 0)[1] == 0
    # The same page of this collector (same origin) and clients without a
    # browser (no Origin, as the SDK) may write.
    same = {"origin": url, "sec-fetch-site": "same-origin"}
    assert httpx.post(url + "/v1/ingest", json=body, headers=same).status_code == 202
    assert httpx.post(url + "/v1/ingest", json=batch(tool_loop_run("sdk-like"))).status_code == 202


def test_a_body_over_the_limit_is_refused_from_its_length(start_collector: Callable[..., BackgroundServer]) -> None:
    server = start_collector(max_body_bytes=4096)
    with httpx.Client() as client:
        for path in ("/v1/ingest", "/v1/deploy", "/login"):
            answer = client.post(
                server.url + path, content=b"{" + b" " * 5000 + b"}", headers={"content-type": "application/json"}
            )
            assert answer.status_code == 413, path


def test_every_answer_carries_the_security_headers(keyed: BackgroundServer) -> None:
    auth = {"authorization": f"Bearer {KEY}"}
    answers = [httpx.get(keyed.url + path, headers=auth) for path in READS]
    answers += [
        httpx.get(keyed.url + "/api/runs"),
        httpx.get(keyed.url + "/login"),
        httpx.get(keyed.url + "/health"),
        httpx.post(keyed.url + "/v1/ingest", json=batch(tool_loop_run("h"), api_key=KEY)),
        httpx.get(keyed.url + "/", headers={"host": "evil.example"}),
    ]
    for answer in answers:
        assert answer.headers["x-content-type-options"] == "nosniff", answer.url
        csp = answer.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-eval" not in csp, answer.url
        assert "script-src 'self'" in csp or "default-src 'none'" in csp
    assert httpx.get(keyed.url + "/api/runs", headers=auth).headers["cache-control"] == "no-store"


def test_no_key_means_loopback_only(tmp_path: Any) -> None:
    settings = Settings(db_path=str(tmp_path / "x.db"))
    assert check_exposure(settings, "127.0.0.1") is None and check_exposure(settings, "localhost") is None
    assert check_exposure(settings, "::1") is None
    with pytest.raises(ValueError, match="--api-key"):
        check_exposure(settings, "0.0.0.0")
    warning = check_exposure(settings, "0.0.0.0", insecure=True)
    assert warning and "WITHOUT an API key" in warning
    keyed = Settings(db_path=str(tmp_path / "x.db"), api_keys=frozenset({KEY}))
    assert check_exposure(keyed, "0.0.0.0") is None
    # The command refuses before it listens or opens the database.
    started = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "dunetrace.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "9",
            "--db",
            str(tmp_path / "refused.db"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "refusing to listen on 0.0.0.0 without an API key" in result.stderr and "--insecure" in result.stderr
    assert not (tmp_path / "refused.db").exists()
    assert time.monotonic() - started < 60


def test_a_keys_file(tmp_path: Any) -> None:
    path = tmp_path / "keys"
    path.write_text("# the team's keys\nkey-one\n\n  key-two  \n")
    settings = Settings.from_env(db_path=str(tmp_path / "k.db"), api_keys_file=str(path))
    assert settings.api_keys == frozenset({"key-one", "key-two"}) and not settings.dev_mode
    (tmp_path / "empty").write_text("# nothing\n")
    with pytest.raises(ValueError, match="holds no key"):
        Settings.from_env(db_path=str(tmp_path / "k.db"), api_keys_file=str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="cannot read"):
        Settings.from_env(db_path=str(tmp_path / "k.db"), api_keys_file=str(tmp_path / "missing"))


def test_websockets_are_checked_as_writes(keyed: BackgroundServer, caplog: pytest.LogCaptureFixture) -> None:
    """No route takes a WebSocket yet; one added later (live updates) is
    behind the same checks: another site's page, a rebound name, no key."""
    import logging
    import socket

    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    here = f"127.0.0.1:{keyed.port}"
    attempts = [
        (here, {"Origin": "http://evil.example"}, "cross_site"),
        (f"evil.example:{keyed.port}", {}, "host"),  # a rebound name
        (here, {"Origin": keyed.url}, "auth"),
    ]
    with caplog.at_level(logging.WARNING, logger="dunetrace.collector"):
        for host, headers, kind in attempts:
            caplog.clear()
            sock = socket.create_connection(("127.0.0.1", keyed.port))
            with pytest.raises(InvalidStatus) as refused:
                connect(f"ws://{host}/api/live", sock=sock, additional_headers=headers, open_timeout=5)
            sock.close()
            assert refused.value.response.status_code == 403
            assert [getattr(r, "refused", None) for r in caplog.records] == [kind], caplog.text
