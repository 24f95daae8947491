"""The local collector: ``dunetrace serve`` (extra ``collector``).

It speaks the ingest API of the wire contract, stores events in one SQLite
file, judges each run once with the detectors, hands signals to the alert
dispatcher, and serves a JSON API and a dashboard over what it stored.

- :mod:`.app`: the Starlette app (``create_app``) and its routes
- :mod:`.schema`: what makes a batch a 422
- :mod:`.store`: SQLite (WAL): events, runs, signals, deploy markers
- :mod:`.judge`: when a run is judged, on its own thread
- :mod:`.api`, :mod:`.dashboard_reads`, :mod:`.openapi`, ``static/``: reading it back
- :mod:`.server`: uvicorn, in the foreground or on a background thread
- :mod:`.demo`: ``dunetrace demo``

Importing this package imports neither Starlette nor uvicorn.
"""
