"""Both backends as the tests meet them: a connection of the test's own beside a store's.

`database_target` (tests/conftest.py) gives each store test a fresh SQLite file
and then a fresh PostgreSQL database; `RawConnection` opens either outside the
store, to hold a lock the way another replica would, or to write what the store
never would.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import psycopg

from deptmesh.services.database import is_postgres_url

__all__ = ["RawConnection"]


class RawConnection:
    """An autocommit connection to `target`; statements use `?` placeholders on both."""

    def __init__(self, target: str | Path) -> None:
        self.postgres = is_postgres_url(target)
        if self.postgres:
            self._connection: psycopg.Connection | sqlite3.Connection = psycopg.connect(
                str(target), autocommit=True
            )
            self.integrity_error: type[Exception] = psycopg.IntegrityError
        else:
            self._connection = sqlite3.connect(str(target), isolation_level=None, timeout=0)
            self.integrity_error = sqlite3.IntegrityError

    def execute(self, sql: str, params: tuple = ()) -> list[tuple]:
        if self.postgres:
            sql = sql.replace("?", "%s")
        cursor = self._connection.execute(sql, params)  # type: ignore[arg-type]
        return list(cursor.fetchall()) if cursor.description else []

    def hold_write_lock(self, table: str) -> None:
        """Begins a transaction that keeps other writers of `table` waiting until rollback():
        on SQLite every writer (the file's one write lock), on PostgreSQL those of the table."""
        if self.postgres:
            self.execute("BEGIN")
            self.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        else:
            self.execute("BEGIN IMMEDIATE")

    def rollback(self) -> None:
        self.execute("ROLLBACK")

    def close(self) -> None:
        self._connection.close()
