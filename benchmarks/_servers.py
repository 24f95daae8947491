"""What the collector benchmarks share: a free port on 127.0.0.1, and a
server process (``dunetrace serve``, or a stand-in) started and waited for
until its ``/health`` answers."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def collector_command(port: int, db: str, sync: str = "full") -> list[str]:
    """``dunetrace serve`` on ``port`` with the store ``db`` (a SQLite file
    or a PostgreSQL URL)."""
    serve = [sys.executable, "-m", "dunetrace.cli", "serve", "--port", str(port), "--db", db]
    return [*serve, "--log-level", "warning", "--sync", sync]


def start_server(command: list[str], port: int, what: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``command`` (listening on ``port``) and return it with its URL
    once ``/health`` answers 200; exits naming ``what`` if it does not
    within 30 s."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start: {process.stderr.read().decode() if process.stderr else ''}")
        time.sleep(0.05)
