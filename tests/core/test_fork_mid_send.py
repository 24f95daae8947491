"""os.fork() while the parent's sending thread makes its first request: the
child's own first request must not wait on a module the parent's thread
was importing at the fork (CPython keeps that import locked in the child)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.ingest_server import IngestServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_fork_during_the_first_send_leaves_the_child_able_to_send(ingest: IngestServer) -> None:
    forked = 0
    for _ in range(3):  # a fresh process each time: a process's first send imports once
        result = subprocess.run(
            [sys.executable, "-W", "ignore::DeprecationWarning", os.path.join(HERE, "fork_mid_send.py"), ingest.url],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": ROOT},
        )
        assert result.returncode == 0, result.stdout + result.stderr
        # The forks met imports on our threads (the first connection's idna
        # codec, today): the case this test is for. None at all means the
        # first send imports nothing any more, and this test checks nothing.
        assert "imports held on our threads: []" not in result.stdout, result.stdout
        forked += result.stdout.count(" exited 0")
    assert forked >= 3
    children = [e for e in ingest.events if e["agent_id"] == "child"]
    assert len(children) == forked * 3  # run.started, tool.called, run.completed
