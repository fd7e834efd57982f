"""PostgreSQL: a pool of connections per store, for replicas on several hosts.

Replicas' transactions run at once here, so the stores lock the rows they
decide on (`Transaction.fetch_one(..., for_update=True)`) and let unique
constraints settle duplicates (`INSERT ... ON CONFLICT DO NOTHING`, then read
the row that won); READ COMMITTED, PostgreSQL's default, lets the statement
after a wait see what the other transaction committed.

Every transaction sets its own `lock_timeout` and `statement_timeout` from the
time the call may wait (time_limits.py), and every session has
`idle_in_transaction_session_timeout`, so a frozen replica's transaction is
ended by the server and releases its locks. Timeouts, conflicts and lost
connections become UNAVAILABLE; a transaction whose deadline passed before its
commit is rolled back (DEADLINE_EXCEEDED).

The URL is libpq's (`postgresql://user@host:port/dbname?sslmode=...`); a
password may also come from PGPASSWORD or ~/.pgpass, as libpq reads them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import psycopg
import psycopg.errors
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from deptmesh.services.database.dialects import POSTGRESQL, Dialect
from deptmesh.services.database.schema import Schema, migrate
from deptmesh.services.database.time_limits import (
    Timeouts,
    check_deadline_before_commit,
    database_busy,
    database_conflict,
    database_unreachable,
    lock_wait_seconds,
)
from deptmesh.services.database.transaction import Transaction
from deptmesh.sidecar.errors import Unavailable

__all__ = ["PostgresDatabase"]

# At most this many transactions of one store at once (the server's worker threads
# beyond it wait for a connection, within their lock wait).
MAX_CONNECTIONS = 8

# Waits that ran out: for a connection, a lock, a statement.
_BUSY = (PoolTimeout, psycopg.errors.LockNotAvailable, psycopg.errors.QueryCanceled)
# Transactions the server ended to break a conflict.
_CONFLICT = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)
# The session is gone: the server closed it (shutdown, idle in transaction too
# long while this process was frozen) or the connection broke.
_GONE = (psycopg.OperationalError, psycopg.errors.IdleInTransactionSessionTimeout)


def _unavailable(error: psycopg.Error, waited_seconds: float) -> Unavailable | None:
    """The UNAVAILABLE a driver error means, or None for one that is not transient."""
    if isinstance(error, _BUSY):
        return database_busy(POSTGRESQL.name, waited_seconds)
    if isinstance(error, _CONFLICT):
        return database_conflict(POSTGRESQL.name)
    if isinstance(error, _GONE):
        return database_unreachable(POSTGRESQL.name)
    return None


class _OwnConnectFailures(logging.Filter):
    """Drops the pool's "error connecting in <name>" warnings for one pool while it
    opens: a server that never answers is said once, by the start-up error."""

    def __init__(self, pool_name: str) -> None:
        super().__init__()
        self._pool_name = pool_name

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (record.msg.startswith("error connecting") and self._pool_name in args)


def _milliseconds(seconds: float) -> int:
    # 0 would mean "no limit" to PostgreSQL.
    return max(1, round(seconds * 1000))


class PostgresDatabase:
    def __init__(self, url: str, schema: Schema, timeouts: Timeouts) -> None:
        self._timeouts = timeouts
        idle_ms = _milliseconds(timeouts.idle_in_transaction_seconds)

        def configure(connection: psycopg.Connection[DictRow]) -> None:
            connection.execute(f"SET idle_in_transaction_session_timeout = {idle_ms}")

        name = f"deptmesh-{schema.name}"
        pool_log = logging.getLogger("psycopg.pool")
        quiet = _OwnConnectFailures(name)
        pool_log.addFilter(quiet)
        try:
            self._pool = self._open_pool(url, name, configure, timeouts)
        finally:
            pool_log.removeFilter(quiet)
        try:
            migrate(self, schema)
        except BaseException:
            self._pool.close()
            raise

    @staticmethod
    def _open_pool(
        url: str,
        name: str,
        configure: Callable[[psycopg.Connection[DictRow]], None],
        timeouts: Timeouts,
    ) -> ConnectionPool[psycopg.Connection[DictRow]]:
        pool: ConnectionPool[psycopg.Connection[DictRow]] = ConnectionPool(
            url,
            # Transactions are begun and ended here, explicitly.
            kwargs={"autocommit": True, "row_factory": dict_row},
            connection_class=psycopg.Connection[DictRow],
            min_size=1,
            max_size=MAX_CONNECTIONS,
            configure=configure,
            # A connection the server closed (a restart, a failover) is replaced
            # before a transaction gets it, not after it fails.
            check=ConnectionPool.check_connection,
            name=name,
            open=True,
        )
        try:
            # Unreachable at start is said as such, not as a wait that ran out.
            pool.wait(timeout=timeouts.max_lock_wait_seconds)
        except PoolTimeout as error:
            pool.close()
            raise database_unreachable(POSTGRESQL.name) from error
        return pool

    @property
    def dialect(self) -> Dialect:
        return POSTGRESQL

    def write(self) -> AbstractContextManager[Transaction]:
        return self._transaction("BEGIN")

    def read(self) -> AbstractContextManager[Transaction]:
        return self._transaction("BEGIN READ ONLY")

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[Transaction]:
        wait = lock_wait_seconds(self._timeouts)
        wait_ms = _milliseconds(wait)
        try:
            with self._pool.connection(timeout=wait) as connection:
                # Integers only: nothing here comes from a request.
                connection.execute(
                    f"{begin}; SET LOCAL lock_timeout = {wait_ms};"
                    f" SET LOCAL statement_timeout = {wait_ms}"
                )
                try:
                    yield Transaction(connection, POSTGRESQL)
                    check_deadline_before_commit()
                    connection.execute("COMMIT")
                except BaseException:
                    _roll_back(connection)
                    raise
        except psycopg.Error as error:
            unavailable = _unavailable(error, wait)
            if unavailable is None:
                raise  # a mistake of ours (a constraint, a statement): INTERNAL
            raise unavailable from error

    def close(self) -> None:
        self._pool.close()


def _roll_back(connection: psycopg.Connection[Any]) -> None:
    """Ends the transaction; a connection that broke is left for the pool to discard."""
    if connection.closed or connection.broken:
        return
    # A failure here leaves a broken connection, which the pool replaces.
    with contextlib.suppress(psycopg.OperationalError):
        connection.execute("ROLLBACK")
