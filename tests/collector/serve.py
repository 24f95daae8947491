"""``dunetrace serve`` as a user starts it: a real process on 127.0.0.1,
with its stderr kept for the test to read."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Serve:
    """``Serve(db, "--api-key", "k", fd_limit=1024)``: started, /health
    answered; ``stop()`` ends it and returns its stderr."""

    def __init__(self, db: Path, *args: str, fd_limit: int | None = None, wait_healthy: bool = True) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        # A pipe, read by a thread: a file would be under the process's
        # file-size limit, which test_health lowers.
        self._lines: list[str] = []

        def limit() -> None:
            if fd_limit is not None:
                import resource

                resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

        self.process = subprocess.Popen(
            [sys.executable, "-m", "dunetrace.cli", "serve", "--port", str(self.port), "--db", str(db), *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            preexec_fn=limit,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if wait_healthy:
            self.wait_answering()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._lines.append(line)

    def wait_answering(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(self.url + "/health", timeout=2)
                return
            except httpx.HTTPError:
                pass
            assert self.process.poll() is None, f"dunetrace serve ended: {self.stderr()}"
            assert time.monotonic() < deadline, f"dunetrace serve did not answer: {self.stderr()}"
            time.sleep(0.1)

    def stderr(self) -> str:
        return "".join(self._lines)

    def stop(self, timeout: float = 15) -> str:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._reader.join(10)
        return self.stderr()

    def __enter__(self) -> Serve:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def descendants(pid: int) -> set[int]:
    """Processes below ``pid`` (Linux /proc), found while ``pid`` lives."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    parent = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
