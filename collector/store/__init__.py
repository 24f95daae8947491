"""The collector's store: SQLite (the default, one file) or PostgreSQL
(``--db postgresql://...``, shared by several collector processes).

``Store`` is the SQLite store; ``open_store(target)`` picks the engine from
``--db``. The schema of both is versioned (migrations.py).
"""

from __future__ import annotations

from typing import Any

from .common import Row, is_postgres_url, wire_events
from .sqlite import SQLiteStore, connect_reader, stored_rows

__all__ = ["Row", "SQLiteStore", "Store", "connect_reader", "is_postgres_url", "open_store", "stored_rows",
           "wire_events"]  # fmt: skip

Store = SQLiteStore


def open_store(target: str, sync: str = "full") -> Any:
    """The store ``--db`` names: a ``postgresql://`` URL or a SQLite file."""
    if is_postgres_url(target):
        from .postgres import PostgresStore  # psycopg is imported only here

        return PostgresStore(target)
    return SQLiteStore(target, sync)
