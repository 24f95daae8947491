"""A real PostgreSQL server for tests: a throw-away cluster on 127.0.0.1.

Debian's ``postgresql`` package provides the binaries (``.ci/run`` installs
it). ``initdb`` refuses to run as root, so as root the cluster is made and
run by the ``postgres`` user. Where PostgreSQL is not installed the test
that asked for it fails, saying so: it never passes without a server.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest

MISSING = "PostgreSQL is not installed: apt-get install postgresql (Debian), then rerun"


def _bin_dir() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return os.path.dirname(found[-1])
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """``start()`` makes and starts a cluster; ``create_database(name)``
    returns a DSN for a new database owned by a login role; ``stop()``."""

    def __init__(self, fsync: bool = False) -> None:
        #: False for tests (faster, nothing to keep); True where commits must
        #: reach the disk as in production (benchmarks/bench_store.py).
        self.fsync = fsync
        self.bin = _bin_dir()
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="dunetrace-pg-")
        self.data = os.path.join(self.dir, "data")
        self._as_postgres = os.geteuid() == 0

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def start(self) -> PostgresServer:
        if self.bin is None:
            pytest.fail(MISSING)
        if self._as_postgres:
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(f"{self.bin}/initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        fsync = "on" if self.fsync else "off"
        opts = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.dir} -c fsync={fsync} -c max_connections=200"
        self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-o", opts, "-l", os.path.join(self.dir, "log"), "-w", "start")
        return self

    def sql(self, statement: str, database: str = "postgres") -> str:
        out = self._run(
            f"{self.bin}/psql",
            "-h",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            database,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
            statement,
        )
        return out.stdout

    def create_database(self, name: str, user: str = "dunetrace", password: str = "dunetrace") -> str:
        """A new database ``name`` owned by ``user`` (made if missing); its DSN."""
        if not self.sql(f"SELECT 1 FROM pg_roles WHERE rolname = '{user}'").strip():
            self.sql(f"CREATE ROLE {user} LOGIN PASSWORD '{password}'")
        self.sql(f"CREATE DATABASE {name} OWNER {user}")
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.bin is not None and os.path.isdir(self.data):
            self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    """Until something listens on 127.0.0.1:``port``, or fail."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"nothing listened on 127.0.0.1:{port} within {timeout:.0f}s")
