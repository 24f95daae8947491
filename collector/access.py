"""Who may reach the collector, checked before any route runs.

In order, for every HTTP request:

1. ``Host`` must be an allowed name: the loopback names, any IP address
   literal (DNS rebinding needs a name), or one given with
   ``--allowed-host``. A page on ``evil.example`` that rebinds its name to
   127.0.0.1 sends ``Host: evil.example`` and is refused.
2. A write (any method but GET, HEAD, OPTIONS) must not come from another
   site: a browser's ``Sec-Fetch-Site`` must be ``same-origin`` and its
   ``Origin`` must be this collector; and the body must be JSON (or OTLP
   protobuf), types a page on another site cannot send without a CORS
   preflight, which the collector never grants. Holds in dev mode too.
3. A body whose ``Content-Length`` is over the limit gets 413 before any
   of it is read.
4. With API keys: every route but ``/health`` and the sign-in page needs a
   key, as ``Authorization: Bearer`` or the dashboard's session cookie.
   ``/v1/ingest`` and ``/v1/deploy`` check the key themselves (the
   contract puts it in the body).

Every response carries ``X-Content-Type-Options: nosniff`` and a
Content-Security-Policy with ``frame-ancestors 'none'``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import quote, urlsplit

from . import _json
from .logs import RefusalLog
from .sessions import COOKIE, key_for_bearer, session_key

__all__ = ["CSP", "AccessGuard", "host_allowed"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The dashboard's scripts and styles are files of its own origin. Inline
#: style attributes are allowed (charts set them); scripts never inline,
#: and nothing is fetched from or sent to another origin.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)

_SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    # Not "no-referrer": with it a browser sends ``Origin: null`` on the
    # dashboard's own form posts, which then look like another site's.
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Bodies a write may carry: types that a page on another site cannot send
#: without asking first (a CORS preflight, which is never granted).
_WRITE_TYPES = frozenset({"application/json", "application/x-protobuf", "application/protobuf"})
_FORM_TYPE = "application/x-www-form-urlencoded"
#: Routes open without a key.
_OPEN = frozenset({"/health", "/login", "/logout"})
#: Routes that read the key from the body (the contract) and check it.
_KEY_IN_BODY = frozenset({"/v1/ingest", "/v1/deploy"})


def host_allowed(host: str, allowed: frozenset[str]) -> bool:
    """Whether a ``Host`` header names this collector: an IP literal, a
    loopback name, or an allowed name ("*": any)."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        name, rest = host[1:end], host[end + 1 :]
        if end < 0 or (rest and not (rest[:1] == ":" and rest[1:].isdigit())):
            return False
    else:
        name, colon, port = host.partition(":")
        if colon and not port.isdigit():
            return False
    name = name.rstrip(".")
    if not name:
        return False
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        pass
    return "*" in allowed or name == "localhost" or name.endswith(".localhost") or name in allowed


def _same_origin(origin: bytes, host: str) -> bool:
    """Whether a browser's ``Origin`` is the site it is writing to."""
    try:
        return urlsplit(origin.decode("latin-1")).netloc.lower() == host.lower()
    except ValueError:  # not a URL at all
        return False


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


class AccessGuard:
    """ASGI middleware doing the checks above; ``settings`` is the
    collector's Settings."""

    def __init__(
        self, app: ASGIApp, settings: Any, routes: list[Any] | None = None, refused: RefusalLog | None = None
    ) -> None:
        self.app = app
        self.settings = settings
        self.refused = refused or RefusalLog()
        #: The app's routes: a body's type is checked only where a route
        #: takes that method (elsewhere the router answers 405).
        self.routes = routes

    def _takes(self, scope: Scope) -> bool:
        if self.routes is None:
            return True
        from starlette.routing import Match

        return any(route.matches(scope)[0] == Match.FULL for route in self.routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers: dict[bytes, bytes] = {}
        for name, value in scope["headers"]:
            headers.setdefault(name, value)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, detail, kind, extra_headers = refusal
            self.refused(kind, detail, scope, status)
            if scope["type"] == "websocket":
                # Closing before accepting: the server answers 403.
                await send({"type": "websocket.close", "code": 1008, "reason": detail[:100]})
            else:
                await _answer(send, status, detail, extra_headers)
            return
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        path = scope["path"]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", ())}
                added = [header for header in _SECURITY_HEADERS if header[0] not in names]
                if b"content-security-policy" not in names:
                    added.append((b"content-security-policy", CSP.encode()))
                if path.startswith("/api/") and b"cache-control" not in names:
                    added.append((b"cache-control", b"no-store"))
                message["headers"] = [*message.get("headers", ()), *added]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _refusal(self, scope: Scope, headers: dict[bytes, bytes]) -> tuple[int, str, str, list[Any]] | None:
        """(status, detail, refusal class, headers) or None to let it in."""
        settings = self.settings
        host = headers.get(b"host", b"").decode("latin-1")
        if host and not host_allowed(host, settings.allowed_hosts):
            name = host.rsplit(":", 1)[0] if not host.startswith("[") else host
            return 400, f"host {name!r} is not allowed; start the collector with --allowed-host {name}", "host", []
        websocket = scope["type"] == "websocket"
        method = scope.get("method", "GET")
        path = scope["path"]
        # A WebSocket opens with a GET, but a page on another site may open
        # one with the user's cookies: checked as a write is.
        if method not in _SAFE_METHODS or websocket:
            site = headers.get(b"sec-fetch-site")
            origin = headers.get(b"origin")
            if site is not None and site not in (b"same-origin", b"none"):
                return 403, "cross-site writes are refused", "cross_site", []
            # A browser that says same-origin may still send ``Origin: null``
            # (a form posted by a page with a strict referrer policy); one
            # that sends no Sec-Fetch-Site is judged by its Origin alone.
            if origin == b"null" and site is None:
                return 403, "cross-site writes are refused", "cross_site", []
            if origin not in (None, b"null") and not _same_origin(origin, host):
                return 403, "cross-site writes are refused", "cross_site", []
            media = _media_type(headers.get(b"content-type", b"").decode("latin-1"))
            form_ok = path in ("/login", "/logout") and media in (_FORM_TYPE, "")
            if method in _BODY_METHODS and media not in _WRITE_TYPES and not form_ok and self._takes(scope):
                wanted = (
                    "application/x-protobuf or application/json"
                    if path == "/v1/traces"
                    else "JSON (Content-Type: application/json)"
                )
                return 415, f"send the body as {wanted}", "content_type", []
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > settings.max_body_bytes:
            return 413, f"body larger than {settings.max_body_bytes} bytes; send smaller batches", "too_large", []
        if settings.dev_mode or path in _OPEN or path in _KEY_IN_BODY:
            return None
        authorization = headers.get(b"authorization", b"").decode("latin-1")
        if authorization:
            if key_for_bearer(authorization, settings.api_keys) is not None:
                return None
            return 401, "unknown or inactive API key", "auth", [(b"www-authenticate", b'Bearer realm="dunetrace"')]
        if session_key(headers.get(b"cookie", b"").decode("latin-1"), settings.api_keys, COOKIE) is not None:
            return None
        if method in ("GET", "HEAD") and not websocket and not path.startswith(("/api/", "/v1/")):
            target = path + ("?" + scope["query_string"].decode("latin-1") if scope.get("query_string") else "")
            location = "/login?next=" + quote(target, safe="/")
            return 303, "sign in first", "auth", [(b"location", location.encode())]
        return (
            401,
            "an API key is needed: Authorization: Bearer <key>",
            "auth",
            [(b"www-authenticate", b'Bearer realm="dunetrace"')],
        )


async def _answer(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]]) -> None:
    body = _json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # A refused request's body is not read: close rather than
                # take it in to reach the next request.
                (b"connection", b"close"),
                *_SECURITY_HEADERS,
                (b"content-security-policy", CSP.encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
