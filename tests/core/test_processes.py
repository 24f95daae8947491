"""multiprocessing children deliver their events whatever the start method,
whether their target returns or a Pool's exit terminates them; os.fork
children keep working, and forking while the parent sends never deadlocks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter

import pytest

from dunetrace import Dunetrace
from tests.ingest_server import IngestServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def fan_out(ingest: IngestServer, method: str, shape: str, **env: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, os.path.join(HERE, "mp_agent.py"), method, shape],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": ROOT, "DT_ENDPOINT": ingest.url, **env},
    )
    assert result.returncode == 0, result.stderr
    return result


def runs(ingest: IngestServer, agent: str = "worker") -> Counter[str]:
    return Counter(e["event_type"] for e in ingest.events if e["agent_id"] == agent)


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
@pytest.mark.parametrize("shape", ["pool-with", "pool-close", "process"])
def test_children_deliver_every_event(ingest: IngestServer, method: str, shape: str) -> None:
    result = fan_out(ingest, method, shape)
    n = 8 if shape == "process" else 400
    assert runs(ingest) == {"run.started": n, "tool.called": n, "run.completed": n}, result.stderr
    assert result.stderr == ""  # nothing dropped or left anywhere


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_sigterm_between_tasks_delivers_and_keeps_the_users_handler(ingest: IngestServer, method: str) -> None:
    # flush_interval 60: only the SIGTERM path can have sent the tasks' events
    fan_out(ingest, method, "terminate", DT_FLUSH="60", DT_SETTLE="3" if method == "fork" else "6")
    assert runs(ingest) == {"run.started": 5, "tool.called": 5, "run.completed": 5}
    # the target's own handler ran (and its run, after our flush, was delivered
    # by the finalizer when the handler's sys.exit ended the child)
    assert runs(ingest, "handler-ran") == {"run.started": 1, "run.completed": 1}
    # terminated mid-run: what it had emitted, and its run ended as abandoned
    stuck = [e for e in ingest.events if e["agent_id"] == "stuck"]
    assert [e["event_type"] for e in stuck] == ["run.started", "tool.called", "run.completed"]
    assert stuck[-1]["payload"]["exit_reason"] == "abandoned"


def test_a_sigterm_handler_the_children_inherit_still_decides(ingest: IngestServer) -> None:
    fan_out(ingest, "fork", "inherited", DT_FLUSH="60")
    # our handler flushed first, then called theirs (exit code 7, checked in
    # the script), whose own run the finalizer delivered
    assert runs(ingest) == {"run.started": 3, "tool.called": 3, "run.completed": 3}
    assert runs(ingest, "inherited-handler-ran") == {"run.started": 3, "run.completed": 3}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_200_forks_while_the_parent_sends_never_deadlock(ingest: IngestServer) -> None:
    import threading

    dt = Dunetrace(endpoint=ingest.url, flush_interval=0.01, batch_size=20)
    stop = threading.Event()

    def parent_agent() -> None:
        # A steady few thousand events a second: the drain and sender threads
        # (and their locks) are busy at most forks, and delivery keeps up.
        while not stop.is_set():
            with dt.run("parent") as run:
                for _ in range(20):
                    run.tool_called("t", {"q": 1})
            time.sleep(0.005)

    sender = threading.Thread(target=parent_agent)
    sender.start()
    children: dict[int, float] = {}
    failed: list[str] = []
    try:
        for i in range(200):
            pid = os.fork()
            if pid == 0:
                code = 3
                try:
                    with dt.run(f"child-{i}") as run:
                        run.tool_called("t")
                    code = 0 if dt.flush(30) else 2  # a child that deadlocked never gets there
                finally:
                    os._exit(code)
            children[pid] = time.monotonic()
            while len(children) >= 8:
                reap(children, failed)
        while children:
            reap(children, failed)
    finally:
        stop.set()
        sender.join(10)
    assert failed == []
    assert dt.flush(20) and dt.stats()["dropped"] == {}
    got = Counter(e["agent_id"] for e in ingest.events if e["agent_id"].startswith("child-"))
    assert len(got) == 200 and set(got.values()) == {3}
    dt.shutdown(5)


def reap(children: dict[int, float], failed: list[str]) -> None:
    for pid, started in list(children.items()):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            del children[pid]
            if os.waitstatus_to_exitcode(status) != 0:
                failed.append(f"child {pid} exited {os.waitstatus_to_exitcode(status)}")
        elif time.monotonic() - started > 60:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            del children[pid]
            failed.append(f"child {pid} hung (deadlock?)")
    time.sleep(0.005)
