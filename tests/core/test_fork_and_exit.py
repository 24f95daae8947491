"""A forked child delivers its own events; the exit flush is bounded and
says what it could not send."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import uuid

import pytest

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_forked_child_gets_its_own_queue_and_thread(ingest: IngestServer) -> None:
    client = Dunetrace(endpoint=ingest.url, flush_interval=0.02)
    with client.run("parent-agent"):
        pass  # the drain thread and the HTTP client now exist in the parent
    assert client.flush(5)
    pid = os.fork()
    if pid == 0:  # child: like a gunicorn --preload worker
        code = 1
        try:
            with client.run("child-agent") as run:
                run.tool_called("t")
            code = 0 if client.flush(5) and client.stats()["sent"] == 3 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert ingest.wait_for(lambda evs: any(e["agent_id"] == "child-agent" for e in evs), timeout=5)
    child_events = [e for e in ingest.events if e["agent_id"] == "child-agent"]
    assert [e["event_type"] for e in child_events] == ["run.started", "tool.called", "run.completed"]
    # the parent's events were not sent again by the child
    assert len([e for e in ingest.events if e["agent_id"] == "parent-agent"]) == 2
    client.shutdown(1)


def run_script(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )


def test_exit_flush_delivers_what_is_queued(ingest: IngestServer) -> None:
    result = run_script(
        f"""
        from dunetrace import Dunetrace
        dt = Dunetrace(endpoint={ingest.url!r}, flush_interval=60)  # only the exit flush sends
        with dt.run("exiting") as run:
            run.tool_called("t")
        """
    )
    assert result.returncode == 0, result.stderr
    assert [e["event_type"] for e in ingest.events] == ["run.started", "tool.called", "run.completed"]
    assert result.stderr == ""


def test_exit_flush_is_bounded_and_reports_unsent_events() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    result = run_script(
        f"""
        from dunetrace import Dunetrace
        dt = Dunetrace(endpoint="http://127.0.0.1:{port}", exit_timeout=1.0)
        with dt.run("exiting") as run:
            for _ in range(10):
                run.tool_called("t")
        """
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 0
    assert "dunetrace: 0 events delivered to " in result.stderr
    assert ", 0 dropped, 12 left undelivered" in result.stderr
    assert elapsed < 10  # interpreter start-up plus the one-second bound


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_forked_child_never_repeats_the_parents_run_ids() -> None:
    # Run ids are drawn 64 at a time; the child must not take the parent's
    # unused ones.
    client = Dunetrace(endpoint="http://127.0.0.1:9", export="none")
    client.run("parent-agent")  # the parent now holds ids drawn ahead
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(write, " ".join(client.run("child").run_id for _ in range(5)).encode())
        finally:
            os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    child = os.read(read, 10_000).decode().split()
    os.close(read)
    parent = [client.run("parent-agent").run_id for _ in range(5)]
    assert len(child) == 5 and not set(child) & set(parent)
    ids = [client.run("many").run_id for _ in range(500)]
    assert len(set(ids)) == 500
    for run_id in ids:
        assert str(uuid.UUID(run_id)) == run_id and uuid.UUID(run_id).version == 4
    client.shutdown(0.1)
