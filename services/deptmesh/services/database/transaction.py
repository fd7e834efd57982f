"""A transaction as the stores see it, on either database, and the database that opens them."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from deptmesh.services.database.dialects import Dialect

__all__ = ["Database", "Row", "Transaction"]


class Row(Protocol):
    """A row read: its columns by name (sqlite3.Row, or psycopg's dict row)."""

    def __getitem__(self, column: str, /) -> Any: ...


class _Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class _Connection(Protocol):
    """What both drivers' connections offer: execute a statement with its parameters."""

    def execute(self, sql: str, parameters: tuple[object, ...], /) -> _Cursor: ...


class Transaction:
    """The statements of one open transaction, written once for either database.

    Statements use `?` placeholders; values are always bound, never formatted in.
    """

    __slots__ = ("_connection", "dialect")

    def __init__(self, connection: _Connection, dialect: Dialect) -> None:
        self._connection = connection
        self.dialect = dialect

    def execute(self, sql: str, params: Sequence[object] = ()) -> int:
        """Runs a statement; returns how many rows it changed."""
        return self._connection.execute(self.dialect.statement(sql), tuple(params)).rowcount

    def fetch_one(
        self, sql: str, params: Sequence[object] = (), *, for_update: bool = False
    ) -> Row | None:
        """The first row `sql` selects, or None. `for_update` locks it until the
        transaction ends: do so for a row the transaction reads to decide how to change it."""
        statement = sql + self.dialect.row_lock if for_update else sql
        row: Row | None = self._connection.execute(
            self.dialect.statement(statement), tuple(params)
        ).fetchone()
        return row

    def fetch_all(self, sql: str, params: Sequence[object] = ()) -> list[Row]:
        """Every row `sql` selects."""
        return self._connection.execute(self.dialect.statement(sql), tuple(params)).fetchall()


class Database(Protocol):
    """A store's database: transactions that write or only read, each bounded in time
    by the call being handled (see time_limits.py)."""

    @property
    def dialect(self) -> Dialect: ...

    def write(self) -> AbstractContextManager[Transaction]:
        """A transaction that may write: committed when the block ends, rolled back if
        it raises or if the call's deadline passed before the commit."""
        ...

    def read(self) -> AbstractContextManager[Transaction]:
        """A transaction that only reads; it waits for no writer."""
        ...

    def close(self) -> None: ...
