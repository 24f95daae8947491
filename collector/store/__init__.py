"""The collector's store: SQLite (the default, one file) or PostgreSQL
(``--db postgresql://...``, shared by several collector processes).

``Store`` is the SQLite store; ``open_store(target)`` picks the engine from
``--db``. The schema of both is versioned (migrations.py).
"""

from __future__ import annotations

from typing import Any

from .common import (
    Row,
    StoreUnavailable,
    describe_target,
    is_postgres_url,
    judge_lease_from_env,
    missing_driver,
    wire_events,
)
from .reads import stored_rows
from .sqlite import SQLiteStore
from .sqlite import connect_reader as _connect_sqlite_reader

__all__ = [
    "Row",
    "SQLiteStore",
    "Store",
    "StoreUnavailable",
    "connect_reader",
    "describe_target",
    "is_postgres_url",
    "judge_lease_from_env",
    "missing_driver",
    "open_store",
    "stored_rows",
    "wire_events",
]

Store = SQLiteStore


def connect_reader(target: str) -> Any:
    """A connection that only reads, for ``stored_rows`` (the judge worker):
    to a SQLite file, or a PostgreSQL URL."""
    if is_postgres_url(target):
        problem = missing_driver(target)
        if problem:
            raise ImportError(problem)
        from .postgres import connect_reader as connect_postgres_reader

        return connect_postgres_reader(target)
    return _connect_sqlite_reader(target)


def open_store(target: str, sync: str = "full") -> Any:
    """The store ``--db`` names: a ``postgresql://`` URL or a SQLite file.
    Without psycopg installed a URL raises ImportError naming the extra."""
    if is_postgres_url(target):
        problem = missing_driver(target)
        if problem:
            raise ImportError(problem)
        from .postgres import PostgresStore  # psycopg is imported only here

        return PostgresStore(target, sync)
    return SQLiteStore(target, sync)
