"""Start and query benchmarks/sink.py in its own process."""

from __future__ import annotations

import json
import pathlib
import socket
import subprocess
import sys
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sink:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> Sink:
        script = pathlib.Path(__file__).with_name("sink.py")
        self.proc = subprocess.Popen([sys.executable, str(script), str(self.port)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"
        return self

    def count(self) -> int:
        with urllib.request.urlopen(self.url + "/count", timeout=5) as response:
            return int(json.load(response)["events"])

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(5)
            self.proc = None
