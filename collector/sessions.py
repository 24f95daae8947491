"""Signing in to the dashboard: a small sign-in page (the key in, a session
cookie out), and checking keys and session cookies.

A session cookie holds its expiry, a short fingerprint of the key it was
made with, and an HMAC-SHA256 of both keyed with that key. Nothing is kept
on the server, so every collector process sharing the keys accepts it,
and taking a key out of the keys signs out every session made with it.
The cookie is ``HttpOnly`` (scripts cannot read it), ``SameSite=Strict``
(another site's page cannot send it) and ``Secure`` when the request came
over HTTPS (directly, or through a proxy uvicorn trusts).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import time
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qs

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from .logs import RefusalLog

__all__ = ["COOKIE", "SignInThrottle", "key_for_bearer", "login_routes", "make_session", "session_key"]

COOKIE = "dunetrace_session"
#: A sign-in form is a few hundred bytes.
_MAX_FORM = 4096

_STYLE = (
    "body{font:15px system-ui,sans-serif;background:#f6f7f9;color:#1d2430;display:flex;justify-content:center;"
    "padding-top:12vh}form{background:#fff;border:1px solid #d8dde6;border-radius:8px;padding:24px 28px;width:320px}"
    "h1{font-size:20px;margin:0 0 16px}label{display:block;margin-bottom:6px}input{width:100%;box-sizing:border-box;"
    "padding:8px;font:inherit;margin-bottom:14px}button{padding:8px 16px;font:inherit}.error{color:#b42318}"
)
_STYLE_HASH = base64.b64encode(hashlib.sha256(_STYLE.encode()).digest()).decode()
#: The sign-in page runs no script and loads nothing: its one style is
#: allowed by its hash.
_PAGE_CSP = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def _fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _mac(key: str, expires: int, fingerprint: str) -> str:
    return hmac.new(key.encode(), f"dunetrace-session:{expires}:{fingerprint}".encode(), "sha256").hexdigest()


def make_session(key: str, lifetime: float) -> str:
    expires = int(time.time() + lifetime)
    fingerprint = _fingerprint(key)
    return f"{expires}.{fingerprint}.{_mac(key, expires, fingerprint)}"


def _match(given: str, keys: Iterable[str]) -> str | None:
    """The configured key equal to ``given``, compared in constant time
    against every key, so the timing tells nothing of them."""
    found = None
    for known in keys:
        if hmac.compare_digest(given.encode(), known.encode()):
            found = known
    return found


def key_for_bearer(authorization: str, keys: Iterable[str]) -> str | None:
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given.strip():
        return None
    return _match(given.strip(), keys)


def session_key(cookie_header: str, keys: Iterable[str], name: str = COOKIE) -> str | None:
    """The key a valid, unexpired session cookie was made with, or None."""
    for part in cookie_header.split(";"):
        cookie_name, _, value = part.strip().partition("=")
        if cookie_name != name:
            continue
        expires_text, _, rest = value.partition(".")
        fingerprint, _, mac = rest.partition(".")
        if not expires_text.isdigit() or int(expires_text) < time.time():
            continue
        for key in keys:
            if hmac.compare_digest(_fingerprint(key), fingerprint) and hmac.compare_digest(
                _mac(key, int(expires_text), fingerprint), mac
            ):
                return key
    return None


def _page(error: str = "", next_path: str = "/") -> HTMLResponse:
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Sign in · Dunetrace</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_STYLE}</style></head><body>'
        '<form method="post" action="/login"><h1>Dunetrace</h1>'
        f'{message}<label for="key">API key</label>'
        '<input id="key" name="key" type="password" autocomplete="current-password" required autofocus>'
        f'<input type="hidden" name="next" value="{html.escape(next_path)}">'
        '<button type="submit">Sign in</button></form></body></html>'
    )
    status = 401 if error else 200
    return HTMLResponse(body, status, headers={"content-security-policy": _PAGE_CSP, "cache-control": "no-store"})


def _safe_next(value: str) -> str:
    """Only a path of this collector: never another site (an open redirect)."""
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


class SignInThrottle:
    """Failed sign-ins per client address: past ``limit`` in ``window``
    seconds that address gets 429 until the window ends, so a weak key
    cannot be guessed through the sign-in page at request speed."""

    def __init__(self, limit: int = 10, window: float = 300.0) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, list[float]] = {}

    def blocked(self, client: str) -> bool:
        now = time.monotonic()
        recent = [t for t in self._failures.get(client, ()) if now - t < self.window]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return len(recent) >= self.limit

    def failed(self, client: str) -> None:
        if len(self._failures) > 10_000:  # bounded: forget the oldest addresses
            for old in list(self._failures)[:5_000]:
                del self._failures[old]
        self._failures.setdefault(client, []).append(time.monotonic())


def login_routes(settings: Any, refused: RefusalLog) -> list[Any]:
    from starlette.routing import Route

    throttle = SignInThrottle()

    async def login_page(request: Request) -> Response:
        if settings.dev_mode:
            return RedirectResponse("/", 303)
        return _page(next_path=_safe_next(request.query_params.get("next", "/")))

    async def login(request: Request) -> Response:
        client = request.client.host if request.client else ""
        if throttle.blocked(client):
            refused("auth", "too many failed sign-ins from this address", request.scope, 429)
            return JSONResponse(
                {"detail": "too many failed sign-ins; try again in a few minutes"},
                429,
                headers={"retry-after": str(int(throttle.window))},
            )
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > _MAX_FORM:
                return JSONResponse({"detail": "sign-in form too large"}, 413)
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media == "application/json":
            from .schema import BadRequest, parse_json

            try:
                data = parse_json(raw)
            except BadRequest:
                data = None
            given = data.get("key") if isinstance(data, dict) else None
            next_path = "/"
        else:
            form = parse_qs(raw.decode("utf-8", "replace"))
            given = (form.get("key") or [""])[0]
            next_path = (form.get("next") or ["/"])[0]
        key = _match(given, settings.api_keys) if isinstance(given, str) and given else None
        if key is None:
            throttle.failed(client)
            refused("auth", "sign-in with an unknown key", request.scope, 401)
            if media == "application/json":
                return JSONResponse({"detail": "unknown or inactive API key"}, 401)
            return _page("That key is not one of this collector's.", _safe_next(next_path))
        if media == "application/json":
            response: Response = JSONResponse({"signed_in": True})
        else:
            response = RedirectResponse(_safe_next(next_path), 303)
        response.set_cookie(
            COOKIE,
            make_session(key, settings.session_lifetime),
            max_age=int(settings.session_lifetime),
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/login", 303)
        response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
        return response

    return [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
