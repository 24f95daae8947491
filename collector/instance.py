"""One running collector: its store, the judge that runs the detectors over
each ended run, the alert dispatcher, and what ``/health`` answers. The ASGI
app (app.py), the ingest endpoint (ingest.py) and the OTLP receiver (otlp.py)
all work on one of these.
"""

from __future__ import annotations

from typing import Any

from .health import Health
from .logs import RefusalLog
from .settings import Settings
from .store import open_store

__all__ = ["Collector"]


class Collector:
    """The store, the judge and the alert dispatcher of one app."""

    def __init__(self, settings: Settings) -> None:
        from .judge import IngestActivity, Judge

        self.settings = settings
        self.store = open_store(settings.db_path, settings.sync)
        #: What ``/health`` answers (health.py).
        self.health = Health(self.store)
        #: Where refused requests are logged (logs.py).
        self.refused = RefusalLog()
        self.dispatcher = _dispatcher(settings, self.store)
        #: Ingest requests in progress; the judge works in their pauses.
        self.activity = IngestActivity()
        self.judge = Judge(self.store, settings, self.dispatcher, self.activity)
        #: Judgements as spans in the runs' traces (judgement_spans.py).
        self.spans = _judgement_spans(settings)
        self.judge.spans = self.spans
        self.started = False

    def start(self) -> None:
        if self.started:
            return
        self.started = True
        if self.dispatcher is not None:
            self.dispatcher.start()
        self.judge.start()

    def stop(self) -> None:
        """Stop the threads; the store stays open (an ASGI test client may
        run the lifespan more than once)."""
        if not self.started:
            return
        self.started = False
        self.judge.stop()
        if self.dispatcher is not None:
            self.dispatcher.stop()

    def close(self) -> None:
        self.stop()
        if self.spans is not None:
            self.spans.close()
        self.health.close()
        self.store.close()


def _judgement_spans(settings: Settings) -> Any:
    if not settings.otlp_endpoint:
        return None
    from .judgement_spans import JudgementSpans

    return JudgementSpans(settings.otlp_endpoint)


def _dispatcher(settings: Settings, store: Any = None) -> Any:
    if not (settings.slack_webhook_url or settings.webhook_url):
        return None
    from .alerts import AlertDispatcher

    return AlertDispatcher(
        slack_webhook_url=settings.slack_webhook_url,
        webhook_url=settings.webhook_url,
        webhook_secret=settings.webhook_secret,
        min_severity=settings.alert_min_severity,
        outbox=store,
    )
