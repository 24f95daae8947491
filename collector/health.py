"""``GET /health``: 200 only when a write would succeed now, else 503 with
the reason; answered within ``TIMEOUT`` seconds whatever the database does.

Two things are looked at:

- a probe: on a connection of its own (waiting at most half a second for
  the write lock) the probe takes the write lock and commits a one-page
  write, which fails as ingest would when the file is read-only, locked,
  or the disk is full; a store of another engine probes itself with its
  ``check_writable()`` (raising ``StoreUnavailable`` or its driver's
  error), or else is only pinged;
- what ingest last met: a batch that could not be stored (say, a disk
  too full for a 500-event batch but not for the probe's page) keeps
  ``/health`` at 503 until a batch is stored again, for up to
  ``STICKY`` seconds.

The probe runs at most once a second (``CACHE``); a load balancer that
asks more often gets the last answer.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Any
from urllib.request import pathname2url

import anyio
from anyio import to_thread

__all__ = ["Health", "unavailable_reason"]

TIMEOUT = 2.0
CACHE = 1.0
STICKY = 10.0

_SQLITE_REASONS = {
    5: "database is locked",  # SQLITE_BUSY
    6: "database is locked",  # SQLITE_LOCKED
    8: "database is read-only",  # SQLITE_READONLY (also a file moved or deleted)
    10: "disk I/O error",  # SQLITE_IOERR
    13: "database or disk is full",  # SQLITE_FULL
    14: "database file cannot be opened",  # SQLITE_CANTOPEN
}


def unavailable_reason(exc: BaseException) -> str:
    """A short reason for a store error, the same for every engine: SQLite's
    error code (of the error, or of the driver error a ``StoreUnavailable``
    was raised from), else a ``reason`` the store gave, else its message."""
    for error in (exc, exc.__cause__):
        code = getattr(error, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _SQLITE_REASONS:
            return _SQLITE_REASONS[code & 0xFF]
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason
    return str(exc) or type(exc).__name__


class Health:
    def __init__(self, store: Any) -> None:
        self._store = store
        self._probe_db: sqlite3.Connection | None = None
        self._probe_lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(1)
        self._cached: tuple[float, str | None] | None = None
        #: (monotonic time, reason) of the last batch that could not be stored.
        self.last_failure: tuple[float, str] | None = None
        self.last_success = 0.0

    # -- what ingest met (called from ingest, cheap) ---------------------------

    def stored(self) -> None:
        self.last_success = time.monotonic()
        cached = self._cached
        if cached is not None and cached[1] is not None:
            self._cached = None  # a write just succeeded: probe again

    def failed(self, exc: BaseException) -> str:
        reason = unavailable_reason(exc)
        self.last_failure = (time.monotonic(), reason)
        return reason

    # -- the check ------------------------------------------------------------

    async def problem(self) -> str | None:
        """None when a write would succeed, else why not."""
        failure = self.last_failure
        now = time.monotonic()
        if failure is not None and failure[0] > self.last_success and now - failure[0] < STICKY:
            return f"{failure[1]} (the last batch could not be stored)"
        cached = self._cached
        if cached is not None and now - cached[0] < CACHE:
            return cached[1]
        try:
            with anyio.fail_after(TIMEOUT):
                found = await to_thread.run_sync(self._probe, abandon_on_cancel=True, limiter=self._limiter)
        except TimeoutError:
            found = f"the database did not answer within {TIMEOUT:g}s"
        self._cached = (time.monotonic(), found)
        return found

    def _probe(self) -> str | None:
        check = getattr(self._store, "check_writable", None)
        if check is None:
            # A store of another engine without its own probe: a read at least.
            check = self._probe_sqlite if getattr(self._store, "engine", "sqlite") == "sqlite" else self._store.ping
        try:
            check()
        except Exception as exc:  # whatever the driver raises is the reason
            return unavailable_reason(exc)
        return None

    def _probe_sqlite(self) -> None:
        with self._probe_lock:
            db = self._probe_db
            if db is None:
                # The file must exist: the probe never creates a database where
                # the collector's was moved away from.
                uri = "file:" + pathname2url(os.path.abspath(self._store.path)) + "?mode=rw"
                db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=0.5)
                db.execute("PRAGMA busy_timeout=500")
                self._probe_db = db
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    # The header's application id, written back unchanged: a
                    # page to write and sync, like any commit of a batch.
                    (app_id,) = db.execute("PRAGMA application_id").fetchone()
                    db.execute(f"PRAGMA application_id = {int(app_id)}")
                    db.execute("COMMIT")
                except BaseException:
                    if db.in_transaction:
                        db.execute("ROLLBACK")
                    raise
            except sqlite3.Error:
                # Next time on a new connection: the file may be back.
                self._probe_db = None
                db.close()
                raise

    def close(self) -> None:
        with self._probe_lock:
            if self._probe_db is not None:
                self._probe_db.close()
                self._probe_db = None
