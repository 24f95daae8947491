"""A failed call names its exception's class: ``tool_responded(error=exc)``
and ``llm_responded(error=exc)`` send ``error_type`` (a tool's error also
as the hash of its message), never the message itself; an error given as
text has no class."""

from __future__ import annotations

from typing import Any

from dunetrace import Dunetrace


class QuotaExceeded(Exception):
    pass


def test_failed_calls_carry_the_class_name(dt: Dunetrace, ingest: Any) -> None:
    error = QuotaExceeded("sentinel-quota-message-9931")
    with dt.run("agent") as run:
        step = run.llm_called("gpt-x")
        run.llm_responded(latency_ms=3.0, finish_reason="error", step=step, error=error)
        tool = run.tool_called("search", {"q": "x"})
        run.tool_responded("search", False, error=error, step=tool)
        text = run.tool_called("search", {"q": "y"})
        run.tool_responded("search", False, error="the tool said no", step=text)
        ok = run.llm_called("gpt-x")
        run.llm_responded(completion_tokens=1, finish_reason="stop", output="fine", step=ok)
    assert dt.flush(5)
    responded = [e["payload"] for e in ingest.events if e["event_type"].endswith(".responded")]
    assert [p.get("error_type") for p in responded] == ["QuotaExceeded", "QuotaExceeded", None, None]
    assert responded[0]["error_hash"] == dt.hasher.error(error)  # hashed like a failed tool call's
    assert responded[1]["error_hash"] == dt.hasher.error(error)
    assert responded[2]["error_hash"] == dt.hasher.error("the tool said no")
    assert "error_hash" not in responded[3]
    assert b"sentinel-quota-message" not in ingest.raw()
