"""SQLite: one file, one connection per store, one writer at a time.

Every transaction runs under one lock: SQLite serialises writers anyway, and the
lock keeps the one connection safe across the server's worker threads. A write
transaction is BEGIN IMMEDIATE, so it holds the file's write lock from its first
statement and read-check-write sequences (idempotency, state changes) are
atomic, also across processes sharing the file. A read transaction is a plain
BEGIN: in WAL mode it waits for no writer.

Both waits, for the lock and for the file (busy_timeout), are bounded by the
call's deadline (time_limits.py); SQLITE_BUSY becomes UNAVAILABLE.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

from deptmesh.services.database.dialects import SQLITE, Dialect
from deptmesh.services.database.schema import Schema, migrate
from deptmesh.services.database.time_limits import (
    Timeouts,
    check_deadline_before_commit,
    database_busy,
    lock_wait_seconds,
)
from deptmesh.services.database.transaction import Transaction

__all__ = ["SqliteDatabase"]

_BUSY = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})


def _is_busy(error: sqlite3.OperationalError) -> bool:
    # Extended codes (SQLITE_BUSY_SNAPSHOT, ...) keep the primary code in their low byte.
    return (getattr(error, "sqlite_errorcode", 0) & 0xFF) in _BUSY


def _enter_wal_mode(connection: sqlite3.Connection, wait_seconds: float) -> None:
    """Switch the file to WAL, waiting out other processes opening it at the same moment.

    SQLite answers BUSY at once, without its busy handler, while another
    connection is creating or recovering the same new file, so the switch is
    retried here until the file's usual lock wait runs out.
    """
    give_up_at = time.monotonic() + wait_seconds
    pause = 0.005
    while True:
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if not _is_busy(error) or time.monotonic() >= give_up_at:
                raise
        time.sleep(pause)  # backoff: SQLite offers nothing to wait on
        pause = min(pause * 2, 0.1)


class SqliteDatabase:
    def __init__(self, path: str | Path, schema: Schema, timeouts: Timeouts) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._timeouts = timeouts
        self._connection = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._connection.row_factory = sqlite3.Row
        self._lock = threading.Lock()
        try:
            with self._lock:
                _enter_wal_mode(self._connection, timeouts.max_lock_wait_seconds)
                self._connection.execute("PRAGMA foreign_keys=ON")
                self._connection.execute("PRAGMA synchronous=FULL")
            migrate(self, schema)
        except BaseException:
            self._connection.close()
            raise

    @property
    def dialect(self) -> Dialect:
        return SQLITE

    def write(self) -> AbstractContextManager[Transaction]:
        return self._transaction("BEGIN IMMEDIATE")

    def read(self) -> AbstractContextManager[Transaction]:
        return self._transaction("BEGIN")

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Transaction]:
        wait = lock_wait_seconds(self._timeouts)
        started = time.monotonic()
        if not self._lock.acquire(timeout=wait):
            raise database_busy(SQLITE.name, wait)
        try:
            left_ms = max(0, round((wait - (time.monotonic() - started)) * 1000))
            connection = self._connection
            try:
                connection.execute(f"PRAGMA busy_timeout = {left_ms}")
                connection.execute(begin)
                try:
                    yield Transaction(connection, SQLITE)
                    check_deadline_before_commit()
                    connection.execute("COMMIT")
                except BaseException:
                    if connection.in_transaction:
                        connection.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as error:
                if _is_busy(error):
                    raise database_busy(SQLITE.name, wait) from error
                raise
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._connection.close()
