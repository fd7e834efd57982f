"""The ledger's database: usage records, each counted once, and the closed months' statements.

A record is kept once by its record_id: a batch is inserted in a few multi-row
`INSERT ... ON CONFLICT (record_id) DO NOTHING` statements, in one transaction,
and when some rows were not inserted the batch's stored rows are read back and
compared, so a redelivered record is a duplicate and a reused id with other
counts refuses the whole batch. Replicas on one PostgreSQL database meet at
the unique key: the second insert of an id waits for the first's commit, then
does nothing.

Sums are computed by the database: (caller, minute) and (callee, minute)
index the range of a department's usage. Statements read `usage_months`, each
caller's calls and units per (month, callee, method, status class), which the
transaction that records a batch adds the batch's new records to (upserts in
key order, so that replicas' transactions lock the same rows in the same
order): a month of a million records is priced from a few rows. A closed
month's statement is kept as the bytes first produced, once per (department,
month).
"""

from __future__ import annotations

import base64
import datetime
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from deptmesh.services.database import DatabaseTarget, Schema, Transaction, open_database
from deptmesh.sidecar import AlreadyExists

__all__ = ["SCHEMA", "UsageEntry", "UsageStore", "UsageSum"]

_TABLES = """
CREATE TABLE IF NOT EXISTS usage_records (
    record_id TEXT NOT NULL PRIMARY KEY,
    caller TEXT NOT NULL,
    callee TEXT NOT NULL,
    method TEXT NOT NULL,
    status_class BIGINT NOT NULL,
    minute BIGINT NOT NULL,
    calls BIGINT NOT NULL CHECK (calls > 0),
    cost_units BIGINT NOT NULL CHECK (cost_units >= 0),
    request_bytes BIGINT NOT NULL CHECK (request_bytes >= 0),
    response_bytes BIGINT NOT NULL CHECK (response_bytes >= 0),
    latency_sum_micros BIGINT NOT NULL CHECK (latency_sum_micros >= 0)
);
CREATE INDEX IF NOT EXISTS usage_by_caller ON usage_records (caller, minute);
CREATE INDEX IF NOT EXISTS usage_by_callee ON usage_records (callee, minute);
CREATE TABLE IF NOT EXISTS usage_months (
    caller TEXT NOT NULL,
    month_start BIGINT NOT NULL,
    callee TEXT NOT NULL,
    method TEXT NOT NULL,
    status_class BIGINT NOT NULL,
    calls BIGINT NOT NULL,
    cost_units BIGINT NOT NULL,
    PRIMARY KEY (caller, month_start, callee, method, status_class)
);
CREATE TABLE IF NOT EXISTS closed_statements (
    department TEXT NOT NULL,
    month TEXT NOT NULL,
    statement TEXT NOT NULL,
    PRIMARY KEY (department, month)
)
"""

SCHEMA = Schema("metering", (_TABLES,))

_COLUMNS = (
    "record_id, caller, callee, method, status_class, minute, calls, cost_units,"
    " request_bytes, response_bytes, latency_sum_micros"
)
_COLUMN_NAMES = tuple(column.strip() for column in _COLUMNS.split(","))
# Rows per INSERT: 11 values each stays well under both databases' limit on parameters.
_ROWS_PER_INSERT = 1000
# Ids per `IN (...)` when a batch's stored rows are read back.
_IDS_PER_SELECT = 500

# StatusClass values (deptmesh.metering.v1), as the sums need them.
_OK = 1
_CLIENT_ERROR = 2
_SERVER_ERROR = 3
_THROTTLED = 4
_DENIED = 5


class UsageEntry(NamedTuple):
    """One validated usage record, its fields in the table's column order."""

    record_id: str
    caller: str
    callee: str
    method: str
    status_class: int
    minute: int  # Unix seconds, a multiple of 60
    calls: int
    cost_units: int
    request_bytes: int
    response_bytes: int
    latency_sum_micros: int


@dataclass(frozen=True, slots=True)
class UsageSum:
    """The usage of one method of one callee by one caller, summed over a range."""

    caller: str
    callee: str
    method: str
    calls: int
    cost_units: int
    errors: int
    throttled: int
    denied: int
    request_bytes: int
    response_bytes: int
    latency_sum_micros: int


def _insert_statement(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
    return (
        f"INSERT INTO usage_records ({_COLUMNS}) VALUES {values}"
        " ON CONFLICT (record_id) DO NOTHING RETURNING record_id"
    )


_ADD_TO_MONTH = (
    "INSERT INTO usage_months"
    " (caller, month_start, callee, method, status_class, calls, cost_units)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (caller, month_start, callee, method, status_class) DO UPDATE SET"
    " calls = usage_months.calls + excluded.calls,"
    " cost_units = usage_months.cost_units + excluded.cost_units"
)


def _month_start(minute: int) -> int:
    moment = datetime.datetime.fromtimestamp(minute, datetime.UTC)
    return int(datetime.datetime(moment.year, moment.month, 1, tzinfo=datetime.UTC).timestamp())


def _monthly(entries: Sequence[UsageEntry]) -> list[tuple[object, ...]]:
    """The entries' calls and units per (caller, month, callee, method, status), in key order."""
    months: dict[int, int] = {}
    sums: dict[tuple[str, int, str, str, int], list[int]] = {}
    for e in entries:
        month = months.get(e.minute)
        if month is None:
            month = months[e.minute] = _month_start(e.minute)
        key = (e.caller, month, e.callee, e.method, e.status_class)
        counts = sums.get(key)
        if counts is None:
            sums[key] = [e.calls, e.cost_units]
        else:
            counts[0] += e.calls
            counts[1] += e.cost_units
    return [(*key, *sums[key]) for key in sorted(sums)]


def _chunks(items: Sequence[UsageEntry], size: int) -> list[Sequence[UsageEntry]]:
    return [items[start : start + size] for start in range(0, len(items), size)]


def _reused(tx: Transaction, entries: Sequence[UsageEntry]) -> str | None:
    """The first record_id among `entries` stored with other fields, or None."""
    for chunk in _chunks(entries, _IDS_PER_SELECT):
        marks = ", ".join("?" * len(chunk))
        stored = {
            row["record_id"]: UsageEntry(*(row[column] for column in _COLUMN_NAMES))
            for row in tx.fetch_all(
                f"SELECT {_COLUMNS} FROM usage_records WHERE record_id IN ({marks})",
                [entry.record_id for entry in chunk],
            )
        }
        for entry in chunk:
            if stored.get(entry.record_id, entry) != entry:
                return entry.record_id
    return None


def _record_id_reused(record_id: str) -> AlreadyExists:
    return AlreadyExists(
        f"record_id {record_id!r} was recorded before with different counts;"
        " nothing of this batch was recorded",
        reason="RECORD_ID_REUSED",
        metadata={"record_id": record_id},
    )


# The columns a department's usage is summed from.
_SUMMED = (
    "caller, callee, method, status_class, calls, cost_units, request_bytes, response_bytes,"
    " latency_sum_micros"
)
_SUMS = f"""
    CAST(SUM(calls) AS BIGINT) AS calls,
    CAST(SUM(cost_units) AS BIGINT) AS cost_units,
    CAST(SUM(CASE WHEN status_class IN ({_CLIENT_ERROR}, {_SERVER_ERROR})
        THEN calls ELSE 0 END) AS BIGINT) AS errors,
    CAST(SUM(CASE WHEN status_class = {_THROTTLED} THEN calls ELSE 0 END) AS BIGINT)
        AS throttled,
    CAST(SUM(CASE WHEN status_class = {_DENIED} THEN calls ELSE 0 END) AS BIGINT) AS denied,
    CAST(SUM(request_bytes) AS BIGINT) AS request_bytes,
    CAST(SUM(response_bytes) AS BIGINT) AS response_bytes,
    CAST(SUM(latency_sum_micros) AS BIGINT) AS latency_sum_micros
"""


class UsageStore:
    def __init__(self, target: DatabaseTarget) -> None:
        self._db = open_database(target, SCHEMA)

    def close(self) -> None:
        self._db.close()

    def record(self, entries: Sequence[UsageEntry]) -> tuple[int, int]:
        """Records a batch, each record_id once; (recorded now, recorded before).

        Raises AlreadyExists (RECORD_ID_REUSED), recording nothing, when a record_id
        was recorded (or appears in the batch) with other fields.
        """
        unique: dict[str, UsageEntry] = {}
        for entry in entries:
            first = unique.setdefault(entry.record_id, entry)
            if first != entry:
                raise _record_id_reused(entry.record_id)
        batch = list(unique.values())
        new: list[UsageEntry] = []
        with self._db.write() as tx:
            for chunk in _chunks(batch, _ROWS_PER_INSERT):
                inserted = {
                    row["record_id"]
                    for row in tx.fetch_all(
                        _insert_statement(len(chunk)), list(itertools.chain.from_iterable(chunk))
                    )
                }
                new.extend(e for e in chunk if e.record_id in inserted)
            if len(new) < len(batch):
                # Some were there before: the same records, or others under their ids.
                reused = _reused(tx, batch)
                if reused is not None:
                    raise _record_id_reused(reused)  # rolls the batch back
            for month in _monthly(new):
                tx.execute(_ADD_TO_MONTH, month)
        return len(new), len(entries) - len(new)

    def usage(self, department: str, start: int, end: int) -> list[UsageSum]:
        """Usage per (caller, callee, method) with `department` as caller or callee,
        over minutes in [start, end) (Unix seconds), in that order."""
        with self._db.read() as tx:
            rows = tx.fetch_all(
                f"SELECT caller, callee, method, {_SUMS} FROM ("
                f" SELECT {_SUMMED} FROM usage_records"
                " WHERE caller = ? AND minute >= ? AND minute < ?"
                " UNION ALL"
                f" SELECT {_SUMMED} FROM usage_records WHERE callee = ? AND caller <> ?"
                " AND minute >= ? AND minute < ?"
                ") AS mine GROUP BY caller, callee, method ORDER BY caller, callee, method",
                (department, start, end, department, department, start, end),
            )
        return [
            UsageSum(
                caller=row["caller"],
                callee=row["callee"],
                method=row["method"],
                calls=row["calls"],
                cost_units=row["cost_units"],
                errors=row["errors"],
                throttled=row["throttled"],
                denied=row["denied"],
                request_bytes=row["request_bytes"],
                response_bytes=row["response_bytes"],
                latency_sum_micros=row["latency_sum_micros"],
            )
            for row in rows
        ]

    def billable_units(self, caller: str, month_start: int) -> dict[tuple[str, str], int]:
        """(callee, method) -> cost units of `caller`'s calls that ended OK in the month
        starting at `month_start` (Unix seconds, UTC)."""
        with self._db.read() as tx:
            rows = tx.fetch_all(
                "SELECT callee, method, CAST(SUM(cost_units) AS BIGINT) AS units"
                " FROM usage_months"
                f" WHERE caller = ? AND month_start = ? AND status_class = {_OK}"
                " GROUP BY callee, method",
                (caller, month_start),
            )
        return {(row["callee"], row["method"]): row["units"] for row in rows}

    def closed_statement(self, department: str, month: str) -> bytes | None:
        """The statement kept for a closed month, as first produced; None before."""
        with self._db.read() as tx:
            row = tx.fetch_one(
                "SELECT statement FROM closed_statements WHERE department = ? AND month = ?",
                (department, month),
            )
        return None if row is None else base64.b64decode(row["statement"])

    def keep_closed_statement(self, department: str, month: str, statement: bytes) -> bytes:
        """Keeps a closed month's statement, unless one was kept first; the one kept."""
        with self._db.write() as tx:
            tx.execute(
                "INSERT INTO closed_statements (department, month, statement) VALUES (?, ?, ?)"
                " ON CONFLICT (department, month) DO NOTHING",
                (department, month, base64.b64encode(statement).decode()),
            )
            row = tx.fetch_one(
                "SELECT statement FROM closed_statements WHERE department = ? AND month = ?",
                (department, month),
            )
        if row is None:  # inserted or there already, in this transaction
            raise RuntimeError("a closed statement vanished within its transaction")
        return base64.b64decode(row["statement"])
