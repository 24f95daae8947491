"""The default exporter: ``POST /v1/ingest`` over one keep-alive httpx client.

Batches go straight to the client's transport for the ingest URL (the proxy
transport when the environment names one), with the client's headers and
timeout. ``httpx.Client.post`` adds cookies, auth, redirects and event
hooks, none of which an ingest request uses, and whose cost on the drain
thread exceeds that of the transport call itself.

Each request has a total deadline, ``request_timeout`` (see ``deadline.py``):
a server that drips its answer cannot hold a batch longer.

What each answer of the ingest API means for the batch is the contract's
table, in :meth:`HttpExporter._judge`; what a 422 names is read in
``rejection.py``.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import ssl
import threading
import time
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from urllib.request import getproxies

import httpcore
import httpx

from .deadline import install_deadline, request_deadline
from .export import ExportBatch, ExportResult
from .log import logger, warn_once
from .plugins import hookimpl
from .rejection import rejected_events

if TYPE_CHECKING:
    from collections.abc import Callable

    from .options import Options

__all__ = ["HttpExporter", "import_connect_codecs", "retry_after_seconds"]

NAME = "http"

#: How the contract's answer starts (our collector's and the upstream
#: backend's, written compact or not): ``{"accepted": 500, ...``.
_ACCEPTED = re.compile(rb'\{\s*"accepted"\s*:\s*(\d{1,9})\s*[,}]')


def retry_after_seconds(response: httpx.Response | Answer) -> float | None:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date), or None."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError, OverflowError):  # what a malformed date raises
        return None


class HttpExporter:
    def __init__(self, options: Options, transport: httpx.BaseTransport | None = None) -> None:
        self._options = options
        self._transport = transport  # httpx.MockTransport in unit tests
        self._client: httpx.Client | None = None
        self._send: Callable[[bytes], httpx.Response | Answer] | None = None
        self._pid = 0
        self._unauthorized = False
        self._lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        # Requests under way, and whether close() was called: the client is
        # closed by whichever comes last, close() or the end of the last
        # request (closing it under a request would cut that request off,
        # after the receiver may have stored its batch).
        self._in_flight = 0
        self._closing = False

    def _http(self) -> httpx.Client:
        """This process's client, built at its first request. A client made
        before os.fork() shares sockets with the parent: a child builds its
        own. Raises _Closed once close() released it."""
        client = self._client
        if client is not None and self._pid == os.getpid():
            return client
        with self._lock:  # two sender threads may ask at once
            if self._client is not None and self._pid == os.getpid():
                return self._client
            if self._closing and self._pid == os.getpid():
                raise _Closed
            import_connect_codecs()
            headers = {"content-type": "application/json", "user-agent": "dunetrace-python"}
            if self._options.api_key:
                headers["authorization"] = f"Bearer {self._options.api_key}"
            client = httpx.Client(
                headers=headers,
                timeout=self._options.request_timeout,
                transport=self._transport,
                limits=httpx.Limits(max_connections=2, max_keepalive_connections=2),
                verify=self.tls_context(),
            )
            self._unauthorized = False
            # The sender first, the pid last: a thread that finds the pid its
            # own finds the rest ready.
            self._send = self._ingest_sender(client)
            self._client = client
            self._pid = os.getpid()
            return client

    def tls_context(self) -> ssl.SSLContext:
        """What the client checks TLS certificates against, built once.

        An ``http://`` endpoint reached without a proxy never sees TLS, and
        loading the default CA bundle costs ~30 ms of CPU on the drain
        thread's first send. Such a client gets a context that trusts no
        certificate instead: should it ever attempt TLS, it fails rather
        than trusting anything. Any other gets httpx's default checks.

        Kept, and built before every fork (lifecycle.py): an OpenSSL lock
        another thread of the parent held at os.fork() (hashing, say) stays
        held in the child, where building a context would wait forever."""
        if self._tls is None:
            if urlsplit(self._options.endpoint).scheme == "http" and not getproxies():
                self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            else:
                self._tls = httpx.create_ssl_context()
        return self._tls

    def _ingest_sender(self, client: httpx.Client) -> Callable[[bytes], httpx.Response | Answer]:
        url = httpx.URL(self._options.ingest_url)
        # Client._transport_for_url (httpx internal, present since 0.18): the
        # transport Client.post would use for this URL, proxies included.
        total = self._options.request_timeout
        pick = getattr(client, "_transport_for_url", None)
        if pick is None:

            def post(body: bytes) -> httpx.Response:
                with request_deadline(total):
                    return client.post(url, content=body)

            return post
        transport: httpx.BaseTransport = pick(url)
        install_deadline(transport)
        headers = client.headers
        extensions = {"timeout": client.timeout.as_dict()}
        pool = getattr(transport, "_pool", None)
        if isinstance(pool, httpcore.ConnectionPool):
            return _pool_sender(pool, httpx.Request("POST", url, headers=headers), extensions, total)

        def send(body: bytes) -> httpx.Response:
            request = httpx.Request("POST", url, headers=headers, content=body, extensions=extensions)
            with request_deadline(total):
                response = transport.handle_request(request)
                try:
                    response.read()
                finally:
                    response.close()
            return response

        return send

    @hookimpl(tryfirst=True)  # delivered before third-party exporters run (see plugins.py)
    def dunetrace_export(self, batch: ExportBatch) -> ExportResult:
        if NAME in batch.delivered_by:
            return ExportResult.ok()
        if self._unauthorized:
            return ExportResult.drop("unauthorized")
        with self._lock:
            if self._closing:
                return ExportResult.drop("shutdown")
            self._in_flight += 1
        try:
            self._http()
            send = self._send
            if send is None:  # closed between the check above and here
                return ExportResult.drop("shutdown")
            response = send(batch.body)
        except _Closed:
            return ExportResult.drop("shutdown")
        except (httpx.TimeoutException, httpcore.TimeoutException) as exc:
            return ExportResult.retry(reason=f"timeout: {type(exc).__name__}")
        except (httpx.TransportError, *_CORE_ERRORS) as exc:  # refused, reset, DNS, protocol errors
            return ExportResult.retry(reason=f"connection error: {type(exc).__name__}")
        finally:
            with self._lock:
                self._in_flight -= 1
                last = self._closing and not self._in_flight
            if last:
                self._release()
        result = self._judge(response, batch)
        if result.outcome == "ok":
            batch.delivered_by.add(NAME)
        return result

    def _judge(self, response: httpx.Response | Answer, batch: ExportBatch) -> ExportResult:
        status = response.status_code
        if 200 <= status < 300:
            return self._confirmed(response, batch)
        if status in (401, 403):
            self._unauthorized = True
            logger.error(
                "dunetrace: the ingest API at %s rejected the API key (HTTP %d). Events are "
                "dropped from now on. Fix: set DUNETRACE_API_KEY (or Dunetrace(api_key=...)) "
                "to an active key for this backend, or leave it empty against a dev-mode backend.",
                self._options.endpoint,
                status,
            )
            return ExportResult.drop("unauthorized")
        if status == 429:
            return ExportResult.retry(retry_after_seconds(response), reason="HTTP 429", throttled=True)
        if status >= 500 or status == 408:
            return ExportResult.retry(retry_after_seconds(response), reason=f"HTTP {status}")
        if status == 422:
            # Find the offending events (by the indices the answer names,
            # else by halving the batch) and drop only those.
            return ExportResult.split("rejected", rejected_events(response.content))
        if status == 413:
            return ExportResult.split("payload_too_large")
        warn_once(
            f"http-{status}",
            "dunetrace: the ingest API at %s answered HTTP %d; is DUNETRACE_ENDPOINT right? "
            "Batches answered so are dropped.",
            self._options.ingest_url,
            status,
        )
        return ExportResult.drop(f"http_{status}")

    def _confirmed(self, response: httpx.Response | Answer, batch: ExportBatch) -> ExportResult:
        """A 2xx is delivery; the contract's body, ``{"accepted": n, ...}``,
        confirms it. One that does not (a proxy's page, a wrong endpoint
        answering 200) is warned about once, and its events are counted as
        sent but unconfirmed: sending them again could store them twice."""
        content = response.content
        match = _ACCEPTED.match(content)  # the usual answer, read without a parse
        if match is not None and int(match.group(1)) >= len(batch):
            return ExportResult.ok()
        try:
            accepted = json.loads(content).get("accepted")
        except (ValueError, AttributeError):  # not JSON, or not an object
            accepted = None
        if type(accepted) is int and accepted >= len(batch):
            return ExportResult.ok()
        warn_once(
            f"unconfirmed:{self._options.ingest_url}",
            "dunetrace: %s answered HTTP %d without the ingest API's confirmation "
            '({"accepted": %d, ...}), answer starts %r; is DUNETRACE_ENDPOINT the ingest API? '
            "Such batches count as sent and as unconfirmed (dt.stats()['unconfirmed'])",
            self._options.ingest_url,
            response.status_code,
            len(batch),
            response.content[:80],
        )
        missing = len(batch) - accepted if type(accepted) is int and accepted >= 0 else len(batch)
        return ExportResult.ok(unconfirmed=missing)

    def send_deploy(self, payload: dict[str, Any]) -> None:
        """Fire-and-forget ``POST /v1/deploy``: one attempt, failure logged once."""
        if self._closing:
            return
        try:
            client = self._http()
            with request_deadline(self._options.request_timeout):
                response = client.post(self._options.deploy_url, json=payload)
            if response.status_code >= 400:
                warn_once(
                    f"deploy-{response.status_code}",
                    "dunetrace: deploy marker not accepted (HTTP %d)",
                    response.status_code,
                )
        except httpx.HTTPError as exc:
            warn_once("deploy-error", "dunetrace: deploy marker not sent: %r", exc)
        except _Closed:
            pass

    def close(self) -> None:
        """Stop: a request under way finishes (within ``request_timeout``)
        and its answer counts; then the connections close. A batch offered
        after this is dropped as ``shutdown``."""
        with self._lock:
            self._closing = True
            idle = not self._in_flight
        if idle:
            self._release()

    def after_fork_in_child(self) -> None:
        """A forked child: the parent's requests under way, and a lock one of
        its threads held at the fork, are the parent's."""
        self._lock = threading.Lock()
        self._in_flight = 0

    @property
    def closed(self) -> bool:
        """True once closed and no request is under way any more."""
        return self._closing and self._client is None

    def _release(self) -> None:
        with self._lock:
            client, self._client, self._send = self._client, None, None
            mine = self._pid == os.getpid()
        if client is not None and mine:
            client.close()


#: What httpcore raises for a connection that fails (httpx maps these to
#: its TransportError; the pool sender below calls httpcore itself).
_CORE_ERRORS = (httpcore.NetworkError, httpcore.ProtocolError, httpcore.ProxyError, httpcore.UnsupportedProtocol)


class Answer:
    """What the pool sender hands back: the status, the body, and the
    headers, read into ``httpx.Headers`` only when asked (a Retry-After);
    an ``httpx.Response`` per batch costs about 17 us of the drain thread."""

    __slots__ = ("_headers", "_raw", "content", "status_code")

    def __init__(self, status_code: int, raw: list[tuple[bytes, bytes]], content: bytes) -> None:
        self.status_code = status_code
        self.content = content
        self._raw = raw
        self._headers: httpx.Headers | None = None

    @property
    def headers(self) -> httpx.Headers:
        if self._headers is None:
            self._headers = httpx.Headers(self._raw)
        return self._headers


def _pool_sender(
    pool: httpcore.ConnectionPool, template: httpx.Request, extensions: dict[str, Any], total: float
) -> Callable[[bytes], Answer]:
    """``POST`` a body straight to the transport's httpcore pool: the
    request line and headers httpx would send (taken once from
    ``template``), with no httpx request, response, stream or decoder per
    batch, which cost a fifth of a request's CPU on the drain thread.
    httpcore's own errors come out as they are (``_CORE_ERRORS``)."""
    url = template.url
    target = httpcore.URL(scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path)
    head = [(k, v) for k, v in template.headers.raw if k.lower() != b"content-length"]

    def send(body: bytes) -> Answer:
        request = httpcore.Request(
            b"POST",
            target,
            headers=[*head, (b"Content-Length", b"%d" % len(body))],
            content=body,
            extensions=extensions,
        )
        with request_deadline(total):
            answer = pool.handle_request(request)
            try:
                content = answer.read()
            finally:
                answer.close()
        return Answer(answer.status, answer.headers, content)

    return send


def import_connect_codecs() -> None:
    """Import what a process's first connection imports, here rather than
    in the middle of it. ``socket.getaddrinfo`` encodes a host name with
    the ``idna`` codec, imported on first use (``encodings.idna``,
    ``stringprep``: some 10 ms). A fork while a sender thread imports it
    leaves the module locked in the child, whose own first connection then
    waits forever; called under ``HttpExporter._lock``, which a fork waits
    for (lifecycle.py), and before each fork."""
    codecs.lookup("idna")


class _Closed(Exception):
    """The exporter was closed before a request could start."""
