"""The SDK behind the upstream ingest service's own rate limiter (60
requests a minute per client, a sliding window, 429 with no Retry-After),
with default settings: a quiet agent spends its minute's requests and
meets a 429, then 10,000 events arrive; every one is stored, in under a
minute. The session's upstream service runs with the limit lifted, so this
one runs an ingest service of its own, with the limit as shipped."""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request

from dunetrace import Dunetrace
from tests.core.test_delivery import emit_run
from tests.pg import PostgresServer, _free_port
from tests.upstream.backend import Service, backend_dir, venv_python


def test_a_backlog_of_10000_behind_upstreams_real_rate_limit(postgres: PostgresServer) -> None:
    backend = backend_dir()
    python = venv_python(backend)
    database = "upstream_limited"
    dsn = postgres.create_database(database)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "DUNETRACE"))}
    env.update(
        DATABASE_URL=dsn,
        PYTHONDONTWRITEBYTECODE="1",
        ENV="dev",
        AUTH_MODE="dev",
        PYTHONPATH=str(backend / "services" / "ingest"),
    )
    ingest = Service(
        "ingest-limited",
        [str(python), "-m", "uvicorn", "ingest_svc.main:app", "--host", "127.0.0.1", "--port", str(port)],
        env,
    )

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                return response.status == 200 and json.load(response).get("db") == "ok"
        except OSError:
            return False

    def statuses() -> list[str]:
        return re.findall(r'"POST /v1/ingest HTTP/1\.1" (\d+)', ingest.log())

    def stored() -> int:
        out = postgres.sql("SELECT count(*) FROM events", database)
        return int(out.strip() or 0)

    try:
        ingest.wait_for(healthy)
        client = Dunetrace(endpoint=url)  # default settings
        start = time.monotonic()
        trickled = 0
        while "429" not in statuses():
            emit_run(client, "agent", 1)
            trickled += 4
            time.sleep(0.05)
            assert time.monotonic() - start < 30, "the trickle never met upstream's limit"
        backlog_at = time.monotonic()
        for _ in range(98):
            emit_run(client, "agent", 50)
        emit_run(client, "agent", 1)
        total = trickled + 10_000
        while stored() < total and time.monotonic() - backlog_at < 75:
            time.sleep(0.5)
        drained = time.monotonic() - backlog_at
        assert stored() == total, (stored(), total)
        assert drained < 60, drained
        assert client.stats()["dropped_total"] == 0
        assert statuses().count("429") <= 2, statuses().count("429")  # waited for the window, no probing
        client.shutdown(1)
    finally:
        ingest.stop()
