"""dt.shutdown() while a LlamaIndex query is still running: the integration
ends its open run through dunetrace_shutdown (before the client ends the
runs left), and that end is delivered, once."""

from __future__ import annotations

import threading

from llama_index.core.query_engine import CustomQueryEngine

from dunetrace import Dunetrace
from dunetrace.integrations.llamaindex import instrument
from tests.ingest_server import IngestServer

entered = threading.Event()
release = threading.Event()


class BlockingEngine(CustomQueryEngine):
    def custom_query(self, query_str: str) -> str:
        entered.set()
        release.wait(10)
        return "late"


def test_shutdown_mid_query_ends_the_run_once(ingest: IngestServer) -> None:
    dt = Dunetrace(endpoint=ingest.url, flush_interval=0.05)
    instrument(dt, agent_id="li-agent")
    manual = dt.run("manual").start()  # a run of the core API, also left open
    answers: list[str] = []
    worker = threading.Thread(target=lambda: answers.append(str(BlockingEngine().query("q"))))
    worker.start()
    try:
        assert entered.wait(10)
        assert dt.shutdown(5)
    finally:
        release.set()
        worker.join(10)
    assert answers == ["late"]  # the query itself is untouched
    assert manual.finished
    events = ingest.events
    ends = {e["agent_id"]: e for e in events if e["event_type"] in ("run.completed", "run.errored")}
    assert sorted(e["agent_id"] for e in events if e["event_type"] == "run.completed") == ["li-agent", "manual"]
    assert ends["li-agent"]["payload"]["exit_reason"] == "abandoned"
    assert ends["manual"]["payload"]["exit_reason"] == "abandoned"
    assert dt.stats()["dropped_total"] == 0
