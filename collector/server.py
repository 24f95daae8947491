"""Running the collector on uvicorn: in the foreground (``dunetrace serve``)
or on a background thread with a port of its own (``dunetrace demo``, tests,
the benchmark)."""

from __future__ import annotations

import gc
import ipaddress
import logging
import os
import socket
import sys
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette

from . import logs
from .app import Collector, create_app
from .connections import ConnectionGuard, guarded_protocol
from .settings import Settings

__all__ = ["BackgroundServer", "check_exposure", "connection_cap", "serve"]

logger = logging.getLogger("dunetrace.collector")

#: File descriptors kept for what is not a client connection: the SQLite
#: files of each connection (a reader per worker thread: up to 40 threads
#: with two or three files each), the judge worker's pipes, the alert
#: clients, the listening socket, the log.
RESERVED_FDS = 256
#: Connections at most when the descriptor limit leaves room for more.
DEFAULT_MAX_CONNECTIONS = 4096


def connection_cap(settings: Settings, raise_limit: bool = False) -> int:
    """How many connections may be open at once: ``max_connections``, and
    below the file-descriptor limit (first raised to its hard limit with
    ``raise_limit``: the collector's own process)."""
    room = DEFAULT_MAX_CONNECTIONS
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
        if raise_limit and soft != resource.RLIM_INFINITY and soft < wanted:
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
                soft = wanted
            except (ValueError, OSError):
                pass
        if soft != resource.RLIM_INFINITY:
            room = soft - RESERVED_FDS if soft > 2 * RESERVED_FDS else soft // 2
    except ImportError:  # Windows: no such limit to stay under
        pass
    wanted = settings.max_connections or DEFAULT_MAX_CONNECTIONS
    return max(8, min(wanted, room))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        found = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(found) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in found)


def check_exposure(settings: Settings, host: str, insecure: bool = False) -> str | None:
    """Refuse (ValueError) to listen beyond this machine without an API key,
    unless ``insecure``; then the warning to log at start."""
    if not settings.dev_mode or _is_loopback(host):
        return None
    if not insecure:
        raise ValueError(
            f"refusing to listen on {host} without an API key: anyone who can reach it could read every run "
            "and write events. Pass --api-key KEY (or --api-keys-file FILE), or --insecure to expose it "
            "without a key anyway."
        )
    return (
        f"listening on {host} WITHOUT an API key (--insecure): anyone who can reach this address can read "
        "every run and write events"
    )


def _config(
    app: Starlette, settings: Settings, host: str, port: int, log_level: str, cap: int, **extra: Any
) -> uvicorn.Config:
    guard = ConnectionGuard(cap, settings.header_timeout, settings.body_timeout, app.state.collector.refused)
    app.state.connections = guard
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        # Logging is configured by ``dunetrace serve`` (logs.py) or by the
        # program hosting a BackgroundServer, never by uvicorn.
        log_config=None,
        access_log=log_level == "debug",
        http=guarded_protocol(guard),
        # The SDK keeps one connection alive and posts on it: no reason to
        # close it between batches.
        timeout_keep_alive=30,
        server_header=False,
        **extra,
    )


def serve(
    settings: Settings,
    host: str = "127.0.0.1",
    port: int = 8001,
    log_level: str = "info",
    log_format: str = "text",
    insecure: bool = False,
    forwarded_allow_ips: str | None = None,
) -> None:
    """Serve until interrupted. Raises ValueError, before anything starts,
    when ``host`` is not loopback and there is no API key (see
    ``check_exposure``)."""
    warning = check_exposure(settings, host, insecure)
    logs.configure(log_level, log_format)
    if warning:
        logger.warning(warning, extra={"event": "insecure"})
    # The judge thread runs detectors in pure Python for milliseconds at a
    # time; with CPython's default 5 ms switch interval the thread storing a
    # batch (and the event loop answering it) can wait that long for the
    # GIL at each hand-over, and the SDK, which sends one batch at a time,
    # waits with them. This process is the collector's own, so the setting
    # is ours to change (not in BackgroundServer, which runs in the host's).
    sys.setswitchinterval(0.0005)
    app = create_app(settings)
    extra = {"forwarded_allow_ips": forwarded_allow_ips} if forwarded_allow_ips else {}
    config = _config(app, settings, host, port, log_level, connection_cap(settings, raise_limit=True), **extra)
    _log_start(app.state.collector, settings, host, port, app.state.connections.cap)
    _tune_gc()
    uvicorn.Server(config).run()


def _log_start(collector: Collector, settings: Settings, host: str, port: int, cap: int) -> None:
    store = collector.store
    engine = getattr(store, "engine", "sqlite")
    if engine == "sqlite":
        database = os.path.abspath(store.path)
    else:  # a URL: never with its password
        from . import store as stores

        hide = getattr(stores, "describe_target", None)
        database = hide(settings.db_path) if hide else f"{engine} database"
    auth = "dev mode (no API key; loopback only)" if settings.dev_mode else f"{len(settings.api_keys)} API key(s)"
    hosts = ", ".join(sorted({"localhost", "IP addresses", *settings.allowed_hosts}))
    logger.info(
        "dunetrace collector on http://%s:%d, database %s, auth: %s, allowed hosts: %s",
        host if ":" not in host else f"[{host}]",
        port,
        database,
        auth,
        hosts,
        extra={
            "event": "start",
            "address": f"{host}:{port}",
            "database": database,
            "engine": engine,
            "auth": "dev" if settings.dev_mode else "api_keys",
            "api_keys": len(settings.api_keys),
            "allowed_hosts": sorted(settings.allowed_hosts),
            "max_connections": cap,
            "header_timeout": settings.header_timeout,
            "body_timeout": settings.body_timeout,
            "max_body_bytes": settings.max_body_bytes,
        },
    )
    weak = sum(len(key) < 16 for key in settings.api_keys)
    if weak:
        logger.warning(
            "%d API key(s) shorter than 16 characters: a key is a password; make one with `openssl rand -hex 24`",
            weak,
            extra={"event": "weak_keys"},
        )
    if not _is_loopback(host) and not settings.allowed_hosts:
        logger.warning(
            "listening on %s with no --allowed-host: clients and browsers that reach the collector by a name "
            "(not an IP address) are refused until that name is added with --allowed-host NAME",
            host,
            extra={"event": "no_allowed_hosts"},
        )


def _tune_gc() -> None:
    """Fewer cyclic garbage collections in the collector's own process.

    A 500-event batch is ~1,500 containers (event and payload dicts, row
    lists) that live until the batch is stored and are then freed by
    reference counting; none are cyclic. With CPython's default threshold
    (a young collection every 700 allocations) collections run in the
    middle of every batch, find those containers alive, and promote them,
    so the older generations and the full collections scan them again:
    about 1.8 ms a batch, for no garbage (``gc.callbacks``, CPython 3.11).
    Collecting every 50,000 allocations finds most of a batch already
    freed; cycles are still collected. What the process
    holds after start (modules, the app) is frozen out of the scans.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


class BackgroundServer:
    """The collector on a free port of 127.0.0.1, on a daemon thread.

    ``with BackgroundServer(settings) as server: server.url``.
    """

    def __init__(
        self,
        settings: Settings,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        insecure: bool = False,
    ) -> None:
        warning = check_exposure(settings, host, insecure)
        if warning:
            logger.warning(warning, extra={"event": "insecure"})
        self.settings = settings
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self.app = create_app(settings)
        self.collector: Collector = self.app.state.collector
        config = _config(self.app, settings, host, self.port, log_level, connection_cap(settings))
        self._server = uvicorn.Server(config)
        # uvicorn (0.54) installs signal handlers only on the main thread, so
        # Ctrl-C stays with the program that started this one.
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._socket]}, name="dunetrace-collector", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the collector did not start on {self.url}")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._socket.close()
        self.collector.close()

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
