"""The usage spool: batches of usage records kept on local disk until the ledger has them.

Every batch the shipper (metering/shipper.py) makes is written here before it
is sent, and deleted only once the ledger acknowledged it, so a batch survives
a ledger outage, a crash of this process and a restart (at-least-once; the
ledger counts each record id once). A SQLite file in WAL mode with synchronous
FULL: a batch `append` returned is on disk. Several processes may share one
spool (replicas of a department with one SQLite --db): writes are
transactions, and a batch two of them send is counted once by the ledger.

The spool is bounded: it holds at most `max_records` records waiting
(DEFAULT_MAX_RECORDS: some 16 MB, as a record is about 160 bytes; at 20 busy
(caller, method, status) rows and one flush every 2 s, over 2 hours of usage).
When a new batch would exceed that, the oldest batches are dropped whole, their
records added to `lost_records` (kept in the file) and logged
(`usage_spool_full`). A batch the ledger refused for good is set aside
(`set_aside`), kept with the reason for someone to look at; set-aside batches
are bounded the same way (and what they drop is counted as lost too).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from deptmesh.metering.v1 import metering_pb2

__all__ = ["DEFAULT_MAX_RECORDS", "SetAside", "SpooledBatch", "UsageSpool"]

DEFAULT_MAX_RECORDS = 100_000

_log = structlog.get_logger("deptmesh.sidecar")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    records INTEGER NOT NULL,
    request BLOB NOT NULL,
    spooled_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS set_aside (
    seq INTEGER PRIMARY KEY,
    records INTEGER NOT NULL,
    request BLOB NOT NULL,
    reason TEXT NOT NULL,
    set_aside_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS losses (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    records INTEGER NOT NULL
);
INSERT OR IGNORE INTO losses (id, records) VALUES (1, 0);
"""


@dataclass(frozen=True, slots=True)
class SpooledBatch:
    """A batch waiting to be sent, oldest first by `seq`."""

    seq: int
    request: metering_pb2.ReportUsageRequest


@dataclass(frozen=True, slots=True)
class SetAside:
    """A batch the ledger refused for good, and why."""

    seq: int
    request: metering_pb2.ReportUsageRequest
    reason: str


class UsageSpool:
    """One spool file; its methods may be called from any thread."""

    def __init__(self, path: Path, *, max_records: int = DEFAULT_MAX_RECORDS) -> None:
        if max_records < 1:
            raise ValueError(f"max_records must be at least 1, got {max_records}")
        self.path = path
        self.max_records = max_records
        path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit: every write below is one explicit transaction.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()  # one connection, used by one thread at a time
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        with self._lock, self._transaction():
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self._db.execute(statement)

    def append(self, request: metering_pb2.ReportUsageRequest) -> None:
        """Keeps `request` until it is deleted; drops the oldest batches if the spool is full."""
        count = len(request.records)
        if not count:
            return
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT INTO batches (records, request, spooled_at) VALUES (?, ?, ?)",
                (count, request.SerializeToString(), time.time()),
            )
            dropped = self._drop_oldest("batches")
        if dropped:
            _log.warning(
                "usage_spool_full",
                path=str(self.path),
                max_records=self.max_records,
                dropped_records=dropped,
                lost_records=self.lost_records,
            )

    def oldest(self) -> SpooledBatch | None:
        """The batch waiting longest, if any."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq, request FROM batches ORDER BY seq LIMIT 1"
            ).fetchone()
        if row is None:
            return None
        return SpooledBatch(row[0], metering_pb2.ReportUsageRequest.FromString(row[1]))

    def waiting(self) -> list[SpooledBatch]:
        """Every batch waiting to be sent, oldest first."""
        with self._lock:
            rows = self._db.execute("SELECT seq, request FROM batches ORDER BY seq").fetchall()
        return [
            SpooledBatch(seq, metering_pb2.ReportUsageRequest.FromString(request))
            for seq, request in rows
        ]

    def delete(self, seq: int) -> None:
        """Forgets a batch the ledger acknowledged."""
        with self._lock, self._transaction():
            self._db.execute("DELETE FROM batches WHERE seq = ?", (seq,))

    def set_aside(self, seq: int, reason: str) -> None:
        """Moves a batch the ledger refused for good out of the way, with the reason."""
        with self._lock, self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO set_aside (seq, records, request, reason, set_aside_at)"
                " SELECT seq, records, request, ?, ? FROM batches WHERE seq = ?",
                (reason, time.time(), seq),
            )
            self._db.execute("DELETE FROM batches WHERE seq = ?", (seq,))
            self._drop_oldest("set_aside")

    def waiting_records(self) -> int:
        """Records in the batches waiting to be sent."""
        with self._lock:
            return int(self._db.execute("SELECT TOTAL(records) FROM batches").fetchone()[0])

    def set_aside_batches(self) -> list[SetAside]:
        """The batches set aside, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, request, reason FROM set_aside ORDER BY seq"
            ).fetchall()
        return [
            SetAside(seq, metering_pb2.ReportUsageRequest.FromString(request), reason)
            for seq, request, reason in rows
        ]

    @property
    def lost_records(self) -> int:
        """Records dropped because the spool was full, since the file was made."""
        with self._lock:
            return int(self._db.execute("SELECT records FROM losses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _drop_oldest(self, table: str) -> int:
        """Drops the oldest batches of `table` until it holds at most max_records; how many
        records were dropped. Inside the caller's transaction."""
        total = int(self._db.execute(f"SELECT TOTAL(records) FROM {table}").fetchone()[0])
        if total <= self.max_records:
            return 0
        dropped, cut = 0, 0
        rows = self._db.execute(f"SELECT seq, records FROM {table} ORDER BY seq").fetchall()
        for seq, records in rows:
            if total - dropped <= self.max_records:
                break
            dropped, cut = dropped + records, seq
        self._db.execute(f"DELETE FROM {table} WHERE seq <= ?", (cut,))
        self._db.execute("UPDATE losses SET records = records + ?", (dropped,))
        return dropped

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
