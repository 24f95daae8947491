"""The local collector: ``dunetrace serve`` (extra ``collector``).

It speaks the ingest API of the wire contract (and OTLP/HTTP spans),
stores events in a SQLite file or a PostgreSQL database, judges each run
once with the detectors, hands signals to the alert dispatcher, and serves a
JSON API and a dashboard over what it stored.

- :mod:`.app`: the Starlette app (``create_app``) and its routes;
  :mod:`.instance`: the store, judge and dispatcher one app works on
- :mod:`.ingest`, :mod:`.decode`, :mod:`.schema`: ``POST /v1/ingest``, and
  what makes a batch a 422; :mod:`.otlp`: ``POST /v1/traces``
- :mod:`.store`: SQLite (WAL) or PostgreSQL: events, runs, signals, deploy
  markers, the alert outbox
- :mod:`.judge`, :mod:`.judge_worker`, :mod:`.detectors`: when a run is
  judged, and by what (in a worker process under ``dunetrace serve``)
- :mod:`.alerts`: Slack and webhook alerts, at least once
- :mod:`.api`, :mod:`.dashboard_reads`, :mod:`.openapi`, ``static/``: reading it back
- :mod:`.access`, :mod:`.sessions`, :mod:`.connections`, :mod:`.health`,
  :mod:`.logs`, :mod:`.settings`: who may connect, sign-in, slow clients,
  ``/health``, the log, the options
- :mod:`.server`: uvicorn, in the foreground or on a background thread
- :mod:`.demo`: ``dunetrace demo``

Importing this package imports neither Starlette nor uvicorn.
"""
