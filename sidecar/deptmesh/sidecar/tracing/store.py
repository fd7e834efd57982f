"""The local trace store: finished spans in one SQLite file per host, no server needed.

`TraceStoreExporter` is an OpenTelemetry `SpanExporter`; put it under the SDK's
`BatchSpanProcessor`, which calls it from its own thread with batches of spans,
so a request never waits for the disk:

    provider.add_span_processor(BatchSpanProcessor(TraceStoreExporter()))

Every service on the host may write the same file. The database is in WAL mode
(readers never block the writer), each batch is one short `BEGIN IMMEDIATE`
transaction, and a writer that finds the file locked waits up to
`BUSY_TIMEOUT_S` before giving the batch up. The store keeps at most
`max_spans` spans: after each batch it drops the oldest traces, found by
insertion order (`seq`) below `newest seq - max_spans`, so a write costs the
batch plus the evicted rows, never a scan of the table. A trace is dropped
whole, so what remains has no holes in the middle.

Tracing fails open: an exporter that cannot write logs why and reports
`SpanExportResult.FAILURE`; it never raises into the SDK or the call.

`TraceStore` reads what `deptmesh trace` shows: the spans of one trace, the
latest trace, the traces of one claim.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import structlog
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from deptmesh.sidecar.errors import TraceStoreError
from deptmesh.sidecar.tracing import attributes as attr

__all__ = [
    "BUSY_TIMEOUT_S",
    "DEFAULT_MAX_SPANS",
    "SpanEvent",
    "SpanRecord",
    "TraceStore",
    "TraceStoreExporter",
    "default_store_path",
]

_log = structlog.get_logger("deptmesh.sidecar")

DEFAULT_MAX_SPANS = 200_000
# How long a writer waits for another process's transaction before dropping its batch.
BUSY_TIMEOUT_S = 5.0
_WAL_SIZE_LIMIT = 32 * 1024 * 1024

# seq is the rowid: every insert takes max(seq) + 1, so seq is the order spans were
# stored in and the eviction threshold is a range on the primary key. A trace is
# found by trace_key, the top 63 bits of its id: an integer index costs a third of
# what one on the 32-character id costs per insert (bench/spans.py's store_us).
# Spans of a trace are those with its key and its id.
_SCHEMA_VERSION = 1  # PRAGMA user_version of a store with this layout
_SCHEMA = (
    """
CREATE TABLE IF NOT EXISTS spans (
    seq INTEGER PRIMARY KEY,
    trace_key INTEGER NOT NULL,
    trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL,
    parent_span_id TEXT,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    service TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    end_ns INTEGER NOT NULL,
    status TEXT NOT NULL,
    status_description TEXT NOT NULL,
    claim_id TEXT,
    attributes TEXT NOT NULL,
    events TEXT NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS spans_by_trace ON spans (trace_key)",
    "CREATE INDEX IF NOT EXISTS spans_by_start ON spans (start_ns)",
    "CREATE INDEX IF NOT EXISTS spans_by_claim ON spans (claim_id) WHERE claim_id IS NOT NULL",
)
_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, kind, service, start_ns, end_ns,"
    " status, status_description, claim_id, attributes, events"
)
_STORED_COLUMNS = f"trace_key, {_COLUMNS}"
# A batch is inserted by one statement with a row of values per span: one step through
# the sqlite3 module, which releases and retakes the GIL per step, instead of one per
# span, so the export thread hardly competes with the calls for the GIL. (A JSON
# array unpacked by json_each was measured 3x slower; executemany steps per row.)
_COLUMN_COUNT = len(_STORED_COLUMNS.split(","))
_ROW_VALUES = "(" + ", ".join("?" * _COLUMN_COUNT) + ")"
# At most this many rows per statement (fewer if SQLite allows fewer variables).
_ROWS_PER_STATEMENT = 512


def _insert(rows: int) -> str:
    return f"INSERT INTO spans ({_STORED_COLUMNS}) VALUES " + ", ".join([_ROW_VALUES] * rows)


def _trace_key(trace_id: int) -> int:
    """The index key of a trace: the top 63 bits of its 128-bit id (a positive int64)."""
    return trace_id >> 65


# Every trace with a span at or below the threshold goes, whole. NOT INDEXED keeps
# the planner on the rowid range (the rows about to go) rather than a scan of the
# covering trace index, which would read the whole table.
_EVICT = """
DELETE FROM spans WHERE trace_key IN (
    SELECT DISTINCT trace_key FROM spans NOT INDEXED WHERE seq <= ?
)
"""
# A root is a server or client span whose parent is not in the store: the start
# of the trace, or the first hop this host saw of a trace that began elsewhere.
_LAST_TRACE = """
SELECT s.trace_id FROM spans AS s
WHERE s.kind IN ('server', 'client')
  AND (s.parent_span_id IS NULL OR NOT EXISTS (
      SELECT 1 FROM spans AS p
      WHERE p.trace_key = s.trace_key AND p.trace_id = s.trace_id
        AND p.span_id = s.parent_span_id
  ))
ORDER BY s.start_ns DESC, s.seq DESC
LIMIT 1
"""


def default_store_path(environ: Mapping[str, str] | None = None) -> Path:
    """$DEPTMESH_TRACE_STORE, else $XDG_STATE_HOME/deptmesh/traces.sqlite, else
    ~/.local/state/deptmesh/traces.sqlite. The exporter creates the directory."""
    env = os.environ if environ is None else environ
    if explicit := env.get("DEPTMESH_TRACE_STORE"):
        return Path(explicit).expanduser()
    state_home = env.get("XDG_STATE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    base = Path(state_home) if os.path.isabs(state_home) else Path.home() / ".local" / "state"
    return base / "deptmesh" / "traces.sqlite"


@dataclass(frozen=True, slots=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One stored span. Ids are lowercase hex as OpenTelemetry formats them; kind is
    `server`, `client`, `internal`, `producer` or `consumer`; status is `UNSET`,
    `OK` or `ERROR`; attribute values are what JSON gives back (lists for arrays)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    status: str = "UNSET"
    status_description: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[SpanEvent, ...] = ()


# Built once: json.dumps with options makes a new encoder per call. default=str: spans
# built by hand may carry values the SDK would have refused.
_json = json.JSONEncoder(separators=(",", ":"), default=str).encode
_KINDS = {kind: kind.name.lower() for kind in SpanKind}


def _row(span: ReadableSpan) -> list[object]:
    context = span.context
    if context is None:
        raise ValueError(f"span {span.name!r} has no context")
    attributes = dict(span.attributes or {})
    claim = attributes.get(attr.CLAIM_ID)
    # The SDK names a resource without service.name "unknown_service": the span's
    # own deptmesh.service attribute says more, when it has one.
    resource_service = str(span.resource.attributes.get("service.name") or "unknown_service")
    own_service = attributes.get(attr.SERVICE)
    service = (
        str(own_service)
        if own_service and resource_service.startswith("unknown_service")
        else resource_service
    )
    events = (
        _json(
            [
                {
                    "name": event.name,
                    "time_ns": event.timestamp,
                    "attributes": dict(event.attributes or {}),
                }
                for event in span.events
            ]
        )
        if span.events
        else "[]"
    )
    status = span.status
    parent = span.parent
    return [
        _trace_key(context.trace_id),
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
        None if parent is None else f"{parent.span_id:016x}",
        span.name,
        _KINDS[span.kind],
        service,
        span.start_time or 0,
        span.end_time or span.start_time or 0,
        status.status_code.name,
        status.description or "",
        None if claim is None else str(claim),
        _json(attributes),
        events,
    ]


class TraceStoreExporter(SpanExporter):
    """Writes finished spans into the store at `path` (default `default_store_path()`),
    keeping at most `max_spans` of them."""

    def __init__(
        self, path: str | Path | None = None, *, max_spans: int = DEFAULT_MAX_SPANS
    ) -> None:
        if max_spans < 1:
            raise ValueError(f"max_spans must be at least 1, got {max_spans}")
        self._path = Path(path) if path is not None else default_store_path()
        self._max_spans = max_spans
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None
        self._rows_per_statement = _ROWS_PER_STATEMENT
        self._shut_down = False
        self._failing = False
        with self._lock:
            self._guarded(self._open)

    @property
    def path(self) -> Path:
        return self._path

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            batch = [value for span in spans for value in _row(span)]
        except (ValueError, TypeError) as error:
            _log.error("trace_store_rejected_batch", spans=len(spans), reason=str(error))
            return SpanExportResult.FAILURE
        with self._lock:
            if self._shut_down:
                return SpanExportResult.FAILURE
            written = self._guarded(lambda: self._write(batch))
        return SpanExportResult.SUCCESS if written else SpanExportResult.FAILURE

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True  # every export is committed before it returns

    def shutdown(self) -> None:
        with self._lock:
            self._shut_down = True
            self._close()

    def _open(self) -> sqlite3.Connection:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        connection = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_S
        )
        try:
            connection.execute("PRAGMA journal_mode=WAL")
            # In WAL mode NORMAL cannot corrupt the file; a power cut may lose the last batches.
            connection.execute("PRAGMA synchronous=NORMAL")
            # The WAL is reused after each checkpoint; this caps what it keeps on disk.
            connection.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT}")
            _create_or_replace_layout(connection)
        except BaseException:
            connection.close()
            raise
        variables = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._rows_per_statement = min(_ROWS_PER_STATEMENT, variables // _COLUMN_COUNT)
        self._connection = connection
        return connection

    def _write(self, batch: list[object]) -> None:
        """Stores the rows' values, `batch` (the rows one after the other)."""
        connection = self._connection or self._open()
        step = self._rows_per_statement * _COLUMN_COUNT
        with _immediate_transaction(connection):
            for first in range(0, len(batch), step):
                values = batch[first : first + step]
                connection.execute(_insert(len(values) // _COLUMN_COUNT), values)
            (newest,) = connection.execute("SELECT max(seq) FROM spans").fetchone()
            threshold = (newest or 0) - self._max_spans
            if threshold > 0:
                connection.execute(_EVICT, (threshold,))

    def _guarded(self, action: Callable[[], object]) -> bool:
        """Runs action (under the lock); a database or file error is logged and drops
        the connection, so the next batch starts from a fresh one."""
        try:
            action()
        except (sqlite3.Error, OSError) as error:
            if not self._failing:
                _log.error("trace_store_unavailable", path=str(self._path), reason=str(error))
            self._failing = True
            self._close()
            return False
        if self._failing:
            _log.info("trace_store_recovered", path=str(self._path))
        self._failing = False
        return True

    def _close(self) -> None:
        if self._connection is not None:
            with suppress(sqlite3.Error):  # the connection is being given up anyway
                self._connection.close()
            self._connection = None


def _create_or_replace_layout(connection: sqlite3.Connection) -> None:
    """Creates the table and indexes; a store of an older layout is emptied first (it
    holds recent traces only: `deptmesh trace` reads this layout alone)."""
    with _immediate_transaction(connection):
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version > _SCHEMA_VERSION:
            raise sqlite3.DatabaseError(
                f"the trace store has layout {version};"
                f" this deptmesh writes layout {_SCHEMA_VERSION}"
            )
        if version < _SCHEMA_VERSION:
            if connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'spans'").fetchone():
                _log.info("trace_store_emptied", reason="older layout", layout=version)
            connection.execute("DROP TABLE IF EXISTS spans")  # its indexes go with it
            for statement in _SCHEMA:
                connection.execute(statement)
            connection.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")


@contextmanager
def _immediate_transaction(connection: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so waiting for it honours busy_timeout
    # instead of failing when a read would have to be upgraded to a write.
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


class TraceStore:
    """Reads a trace store (read-only; writers keep writing meanwhile)."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise TraceStoreError(f"no trace store at {path}")
        self._path = path
        self._layout_checked = False
        try:
            self._connection = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S
            )
        except sqlite3.Error as error:
            raise TraceStoreError(f"cannot open the trace store at {path}: {error}") from error

    def spans_of(self, trace_id: str) -> list[SpanRecord]:
        """The stored spans of one trace, by start time; empty when it is not stored."""
        try:
            key = _trace_key(int(trace_id, 16))
        except ValueError:
            return []  # not a trace id: no trace has it
        rows = self._query(
            f"SELECT {_COLUMNS} FROM spans WHERE trace_key = ? AND trace_id = ?"
            " ORDER BY start_ns, seq",
            (key, trace_id.lower()),
        )
        try:
            return [_record(row) for row in rows]
        except (ValueError, KeyError, TypeError) as error:
            raise TraceStoreError(f"a span of {trace_id} in {self._path} is malformed") from error

    def last_trace_id(self) -> str | None:
        """The trace whose root server or client span started last; None when empty."""
        rows = self._query(_LAST_TRACE, ())
        return str(rows[0][0]) if rows else None

    def trace_ids_of_claim(self, claim_id: str) -> list[str]:
        """Every trace with a span about this claim, the earliest first."""
        rows = self._query(
            "SELECT trace_id FROM spans WHERE claim_id = ?"
            " GROUP BY trace_id ORDER BY min(start_ns)",
            (claim_id,),
        )
        return [str(trace_id) for (trace_id,) in rows]

    def span_count(self) -> int:
        rows = self._query("SELECT count(*) FROM spans", ())
        return int(rows[0][0])

    def close(self) -> None:
        self._connection.close()

    def __enter__(self) -> TraceStore:
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _query(self, sql: str, parameters: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            if not self._layout_checked:
                (layout,) = self._connection.execute("PRAGMA user_version").fetchone()
                if layout != _SCHEMA_VERSION:
                    raise TraceStoreError(
                        f"the trace store at {self._path} has layout {layout}; this deptmesh"
                        f" reads layout {_SCHEMA_VERSION} (its services rewrite the store"
                        " when they start)"
                    )
                self._layout_checked = True
            return self._connection.execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            raise TraceStoreError(
                f"cannot read the trace store at {self._path}: {error}"
            ) from error


def _record(row: tuple[Any, ...]) -> SpanRecord:
    (trace_id, span_id, parent, name, kind, service, start_ns, end_ns) = row[:8]
    (status, description, _claim, attributes, events) = row[8:]
    return SpanRecord(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=kind,
        service=service,
        start_ns=start_ns,
        end_ns=end_ns,
        status=status,
        status_description=description,
        attributes=json.loads(attributes),
        events=tuple(
            SpanEvent(event["name"], event["time_ns"], event["attributes"])
            for event in json.loads(events)
        ),
    )
