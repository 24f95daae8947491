"""Running the collector on uvicorn: in the foreground (``dunetrace serve``)
or on a background thread with a port of its own (``dunetrace demo``, tests,
the benchmark)."""

from __future__ import annotations

import gc
import socket
import sys
import threading
import time
from typing import Any

import uvicorn
from starlette.applications import Starlette

from .app import Collector, create_app
from .settings import Settings

__all__ = ["BackgroundServer", "serve"]


def _config(app: Starlette, host: str, port: int, log_level: str, **extra: Any) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        # The SDK keeps one connection alive and posts on it: no reason to
        # close it between batches.
        timeout_keep_alive=30,
        server_header=False,
        **extra,
    )


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8001, log_level: str = "info") -> None:
    """Serve until interrupted."""
    # The judge thread runs detectors in pure Python for milliseconds at a
    # time; with CPython's default 5 ms switch interval the thread storing a
    # batch (and the event loop answering it) can wait that long for the
    # GIL at each hand-over, and the SDK, which sends one batch at a time,
    # waits with them. This process is the collector's own, so the setting
    # is ours to change (not in BackgroundServer, which runs in the host's).
    sys.setswitchinterval(0.0005)
    _tune_gc()
    uvicorn.Server(_config(create_app(settings), host, port, log_level)).run()


def _tune_gc() -> None:
    """Fewer cyclic garbage collections in the collector's own process.

    A 500-event batch is ~1,500 containers (event and payload dicts, row
    lists) that live until the batch is stored and are then freed by
    reference counting; none are cyclic. With CPython's default threshold
    (a young collection every 700 allocations) collections ran in the
    middle of every batch, found those containers alive, and promoted them,
    so the older generations and the full collections scanned them again:
    about 1.8 ms a batch, for no garbage (measured with ``gc.callbacks``,
    CPython 3.11). Collecting every 50,000 allocations finds most of a
    batch already freed; cycles are still collected. What the process
    holds after start (modules, the app) is frozen out of the scans.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 10)


class BackgroundServer:
    """The collector on a free port of 127.0.0.1, on a daemon thread.

    ``with BackgroundServer(settings) as server: server.url``.
    """

    def __init__(self, settings: Settings, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> None:
        self.settings = settings
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.host, self.port = self._socket.getsockname()[:2]
        self.app = create_app(settings)
        self.collector: Collector = self.app.state.collector
        config = _config(self.app, host, self.port, log_level)
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
