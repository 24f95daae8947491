"""Connections to PostgreSQL for the store (postgres.py): a small pool
that recovers from a server restart, and a session that runs SQLite's SQL
(``?`` placeholders, rows read by position or by name), so the read queries
of SQLiteStore serve both engines.

psycopg 3 is imported here first: without it, importing this module raises
ImportError naming the extra to install.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

try:
    import psycopg
    from psycopg.adapt import Loader
except ImportError as exc:  # pragma: no cover - depends on the environment
    from .common import POSTGRES_EXTRA

    raise ImportError(f"--db postgresql://... needs the PostgreSQL driver (psycopg 3): {POSTGRES_EXTRA}") from exc

__all__ = ["Pool", "Reader", "Session", "connect_reader"]


class _Number(Loader):
    """``numeric`` (what ``sum()`` of integers gives) as an int or a float,
    not a Decimal, which JSON answers cannot hold."""

    def load(self, data: Any) -> int | float:
        text = bytes(data).decode()
        return int(text) if text.lstrip("-").isdigit() else float(text)


class _Row(tuple):  # type: ignore[type-arg]
    """A row read by position (``row[0]``, unpacking) or by column name
    (``row["status"]``, ``dict(row)``), as sqlite3.Row."""

    _names: tuple[str, ...]

    def keys(self) -> tuple[str, ...]:
        return self._names

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return tuple.__getitem__(self, self._names.index(key))
        return tuple.__getitem__(self, key)


def _rows(cursor: Any) -> Any:
    names = tuple(column.name for column in cursor.description or ())

    def make(values: Sequence[Any]) -> _Row:
        row = _Row(values)
        row._names = names
        return row

    return make


@functools.lru_cache(maxsize=256)
def _placeholders(sql: str) -> str:
    """SQLite's ``?`` placeholders as psycopg's ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


class _Result:
    """What ``execute`` returns: the rows, already fetched."""

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        return self._rows[0] if self._rows else None

    def fetchall(self) -> list[Any]:
        return self._rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)


class Session:
    """A connection that takes SQLite's SQL (``?`` placeholders), for the
    queries SQLiteStore's methods run."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, args: Sequence[Any] = ()) -> _Result:
        cursor = self.conn.execute(_placeholders(sql), list(args))
        rows = cursor.fetchall() if cursor.description else []
        return _Result(rows, cursor.rowcount)

    def executemany(self, sql: str, args: Iterable[Sequence[Any]]) -> None:
        with self.conn.cursor() as cursor:
            cursor.executemany(_placeholders(sql), list(args))


class Reader:
    """``store._reader()``: each statement on a pooled connection, in
    autocommit."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    def execute(self, sql: str, args: Sequence[Any] = ()) -> _Result:
        with self._pool.connection() as conn:
            return Session(conn).execute(sql, args)


class Pool:
    """Up to ``size`` connections, made when first needed. A connection the
    server dropped is closed on return, and the next caller gets a new one,
    so the store recovers by itself when the server comes back."""

    def __init__(self, url: str, size: int, timeout: float, options: str = "") -> None:
        self.url = url
        self.options = options
        self.size = size
        self.timeout = timeout
        self._idle: list[Any] = []
        self._open = 0
        self._cond = threading.Condition()
        self._closed = False

    def _connect(self) -> Any:
        # A server that does not answer is a 503 within seconds, not a
        # request hanging for the operating system's TCP timeout.
        extra: dict[str, Any] = {"options": self.options} if self.options else {}
        conn = psycopg.connect(
            self.url,
            autocommit=True,
            connect_timeout=5,
            row_factory=_rows,
            application_name="dunetrace-collector",
            **extra,
        )
        conn.adapters.register_loader("numeric", _Number)
        return conn

    @contextmanager
    def connection(self) -> Iterator[Any]:
        deadline = time.monotonic() + self.timeout
        conn = None
        with self._cond:
            while True:
                if self._closed:
                    raise psycopg.OperationalError("the store is closed")
                if self._idle:
                    conn = self._idle.pop()
                    break
                if self._open < self.size:
                    self._open += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise psycopg.OperationalError(f"no database connection free within {self.timeout:.0f}s")
                self._cond.wait(remaining)
        try:
            if conn is None:
                conn = self._connect()
        except BaseException:
            with self._cond:
                self._open -= 1
                self._cond.notify()
            raise
        try:
            yield conn
        finally:
            self._give_back(conn)

    def _give_back(self, conn: Any) -> None:
        broken = conn.closed or conn.broken
        healthy = not broken and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        dropped = [conn]
        with self._cond:
            if healthy and not self._closed:
                self._idle.append(conn)
                self._cond.notify()
                return
            if broken:
                # A server restart or failover drops every connection at once:
                # the idle ones are let go too, so the requests after this
                # one's 503 get new connections rather than one 503 each.
                dropped += self._idle
                self._idle = []
            self._open -= len(dropped)
            self._cond.notify_all()
        for each in dropped:
            each.close()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._open -= len(idle)
            self._cond.notify_all()
        for conn in idle:
            conn.close()


def connect_reader(url: str) -> Reader:
    """One connection that reads with SQLite's SQL (``stored_rows``): the
    judge worker process's."""
    return Reader(Pool(url, 1, 30.0))
