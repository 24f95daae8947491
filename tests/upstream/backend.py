"""The real upstream Dunetrace backend, started natively for tests.

Its ingest service and detector worker come as source in the shared folder
beside the repository checkout (``../shared/upstream-backend``, read-only in
CI). They run from that source in place (``PYTHONPATH``), each from an empty
working directory of its own (they read a ``.env`` from there), with a
Python of their own: a venv made once under the temp dir, keyed by a hash of
their requirements files, and reused. Upstream's SDK is also named
``dunetrace``, so nothing of theirs may reach the product's interpreter, and
ours must not reach theirs.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from tests.pg import PostgresServer, _free_port

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = ("services/ingest/requirements.txt", "services/detector/requirements.txt")


def backend_dir() -> Path:
    """The upstream backend's source, or a loud failure naming what is missing.

    CI puts the shared folder beside the checkout; a checkout elsewhere names
    it with DUNETRACE_SHARED_DIR."""
    shared = Path(os.environ.get("DUNETRACE_SHARED_DIR") or REPO / ".." / "shared")
    backend = (shared / "upstream-backend").resolve()
    where = (
        "It is the shared folder beside the repository checkout (../shared/upstream-backend); set "
        "DUNETRACE_SHARED_DIR to the shared folder if yours is elsewhere"
    )
    if not backend.is_dir():
        pytest.fail(f"the upstream Dunetrace backend is missing: no folder {backend}. {where}")
    missing = [
        p
        for p in (
            *REQUIREMENTS,
            "services/ingest/ingest_svc",
            "services/detector/detector_svc",
            "packages/sdk-py/dunetrace",
            "detectors.yml",
        )
        if not (backend / p).exists()
    ]
    if missing:
        pytest.fail(f"the upstream Dunetrace backend is incomplete: {backend} lacks {', '.join(missing)}. {where}")
    return backend


def venv_python(backend: Path) -> Path:
    """A venv with the services' pinned requirements (from PyPI), made once
    per set of requirements and Python version, and reused by later runs."""
    key = hashlib.sha256(f"{sys.version_info[:2]}".encode())
    for name in REQUIREMENTS:
        key.update((backend / name).read_bytes())
    home = Path(tempfile.gettempdir()) / f"dunetrace-upstream-venv-{key.hexdigest()[:16]}"
    python = home / "bin" / "python"
    done = home / ".complete"
    with open(f"{home}.lock", "w") as lock:  # two test sessions at once make it once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(home, ignore_errors=True)  # a half-made one from an interrupted run
            base = getattr(sys, "_base_executable", sys.executable)
            _run([base, "-m", "venv", str(home)], "making the upstream backend's venv")
            requirements = [arg for name in REQUIREMENTS for arg in ("-r", str(backend / name))]
            _run(
                [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *requirements],
                "installing the upstream backend's requirements from PyPI",
            )
            done.write_text("ok\n")
    return python


def _run(cmd: list[str], what: str) -> None:
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        pytest.fail(f"{what} failed ({' '.join(cmd)}):\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")


class Service:
    """One upstream service process, its log in its working directory."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.dir = tempfile.mkdtemp(prefix=f"dunetrace-upstream-{name}-")
        self.log_path = os.path.join(self.dir, "log")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(cmd, cwd=self.dir, env=env, stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_for(self, ready: object, timeout: float = 60.0) -> None:
        """Until ``ready()`` is true; fail with the log when the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"upstream {self.name} exited ({self.process.returncode}):\n{self.log()[-4000:]}")
            if ready():  # type: ignore[operator]
                return
            time.sleep(0.1)
        pytest.fail(f"upstream {self.name} was not ready within {timeout:.0f}s:\n{self.log()[-4000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        shutil.rmtree(self.dir, ignore_errors=True)


class UpstreamBackend:
    """The ingest service (``url``) and the detector worker on one database."""

    def __init__(self, postgres: PostgresServer, backend: Path, python: Path) -> None:
        self.postgres = postgres
        self.database = "upstream"
        dsn = postgres.create_database(self.database)
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "DUNETRACE"))}
        env.update(
            DATABASE_URL=dsn,
            PYTHONDONTWRITEBYTECODE="1",  # the shared folder is read-only in CI
            # The default 60 requests a minute per client IP would pace the
            # SDK across the examples; the limit itself is not under test here.
            RATE_LIMIT_REQUESTS="100000",
        )
        self.ingest = Service(
            "ingest",
            [str(python), "-m", "uvicorn", "ingest_svc.main:app", "--host", "127.0.0.1", "--port", str(port)],
            {**env, "ENV": "dev", "AUTH_MODE": "dev", "PYTHONPATH": str(backend / "services" / "ingest")},
        )
        self.detector: Service | None = None
        try:
            self.ingest.wait_for(self._healthy)  # it creates the tables the detector extends
            self.detector = Service(
                "detector",
                [str(python), "-m", "detector_svc.worker"],
                {
                    **env,
                    "POLL_INTERVAL": "0.5",
                    "STALL_TIMEOUT_SECS": "90",
                    "DETECTOR_CONFIG": str(backend / "detectors.yml"),
                    "PYTHONPATH": os.pathsep.join(str(backend / p) for p in ("packages/sdk-py", "services/detector")),
                },
            )
            self.detector.wait_for(lambda: "Detector worker started" in self.detector.log())  # type: ignore[union-attr]
        except BaseException:
            self.stop()
            raise

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                return response.status == 200 and json.load(response).get("db") == "ok"
        except OSError:
            return False

    def query(self, sql: str) -> list[dict[str, object]]:
        """Rows of ``sql`` as JSON objects (through psql, as the superuser)."""
        out = self.postgres.sql(f"SELECT coalesce(json_agg(q), '[]') FROM ({sql}) q", self.database)
        return json.loads(out)  # type: ignore[no-any-return]

    def stop(self) -> None:
        for service in (self.detector, self.ingest):
            if service is not None:
                service.stop()
