"""What the answers of every exporter mean for a batch together
(dunetrace.export.combined), for any mix of answers a plugin may give."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dunetrace import log as dunetrace_log
from dunetrace.export import ExportBatch, ExportResult, combined

reasons = st.sampled_from(["", "HTTP 503", "timeout", "rejected", "mine"])
results = st.one_of(
    st.none(),
    st.builds(ExportResult.ok, st.integers(0, 5)),
    st.builds(ExportResult.retry, st.one_of(st.none(), st.floats(0, 600)), reasons, st.booleans()),
    st.builds(ExportResult.drop, reasons),
    st.builds(ExportResult.split, reasons),
)


def _batch(delivered_by: set[str]) -> ExportBatch:
    batch = ExportBatch("agent", b'{"events": []}', 3)
    batch.delivered_by = set(delivered_by)
    return batch


@given(st.lists(results, min_size=1, max_size=6), st.sets(st.sampled_from(["http", "stdout"])))
def test_the_combined_answer_follows_the_rules(answers: list[ExportResult | None], delivered: set[str]) -> None:
    result = combined(answers, _batch(delivered))
    given_ = [a for a in answers if a is not None]
    retries = [a for a in given_ if a.outcome == "retry"]
    if retries:
        # Any exporter asking for a retry keeps the batch, for the longest wait asked.
        waits = [a.retry_after for a in retries if a.retry_after is not None]
        assert result.outcome == "retry"
        assert result.retry_after == (max(waits) if waits else None)
        assert result.reason == retries[0].reason
        assert result.throttled == any(a.throttled for a in retries)
        return
    first = next(
        (a for a in given_ if a.outcome == "split" or (a.outcome == "drop" and not delivered)),
        None,
    )
    if first is not None:
        assert result is first  # the first split, or drop of an undelivered batch, as given
        return
    assert result.outcome == "ok"
    assert result.unconfirmed == max([a.unconfirmed for a in given_ if a.outcome == "ok"], default=0)


def test_no_exporter_drops_the_batch_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    dunetrace_log.forget_warnings()
    with caplog.at_level(logging.WARNING, logger="dunetrace"):
        result = combined([], _batch(set()))
    assert (result.outcome, result.reason) == ("drop", "no_exporter")
    assert any("no exporter is registered" in record.getMessage() for record in caplog.records)
