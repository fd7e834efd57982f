"""The trace store's writer: an OpenTelemetry `SpanExporter` into the store's file.

Put it under the SDK's `BatchSpanProcessor`, which calls it from its own thread
with batches of spans, so a request never waits for the disk:

    provider.add_span_processor(BatchSpanProcessor(TraceStoreExporter()))

Every service on the host may write the same file. The database is in WAL mode
(readers never block the writer), each batch is one short `BEGIN IMMEDIATE`
transaction, and a writer that finds the file locked waits up to
`BUSY_TIMEOUT_S` before giving the batch up. The store keeps at most
`max_spans` spans: after each batch it drops the oldest traces, found by
insertion order (`seq`) below `newest seq - max_spans`, so a write costs the
batch plus the evicted rows, never a scan of the table. A trace is dropped
whole, so what remains has no holes in the middle; tags go by the same range.

Tracing fails open: an exporter that cannot write logs why and reports
`SpanExportResult.FAILURE`; it never raises into the SDK or the call.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import structlog
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind

from deptmesh.sidecar.tracing import attributes as attr
from deptmesh.sidecar.tracing.store.layout import (
    BUSY_TIMEOUT_S,
    STORED_SPAN_COLUMNS,
    TAG_COLUMNS,
    create_or_replace_layout,
    immediate_transaction,
    trace_key,
)
from deptmesh.sidecar.tracing.store.location import default_store_path

__all__ = ["DEFAULT_MAX_SPANS", "TraceStoreExporter"]

_log = structlog.get_logger("deptmesh.sidecar")

DEFAULT_MAX_SPANS = 200_000
_WAL_SIZE_LIMIT = 32 * 1024 * 1024

# A batch is inserted by one statement with a row of values per span: one step through
# the sqlite3 module, which releases and retakes the GIL per step, instead of one per
# span, so the export thread hardly competes with the calls for the GIL. (A JSON
# array unpacked by json_each was measured 3x slower; executemany steps per row.)
# Tags likewise, in a second statement when the batch has any.
_SPAN_COLUMN_COUNT = len(STORED_SPAN_COLUMNS.split(","))
_TAG_COLUMN_COUNT = len(TAG_COLUMNS.split(","))
# At most this many rows per statement (fewer if SQLite allows fewer variables).
_ROWS_PER_STATEMENT = 512
_INSERT_SPANS = f"INSERT INTO spans ({STORED_SPAN_COLUMNS}) VALUES "
# A span that carries one value twice (a sequence may repeat) keeps it once.
_INSERT_TAGS = f"INSERT OR IGNORE INTO tags ({TAG_COLUMNS}) VALUES "

# Every trace with a span at or below the threshold goes, whole. NOT INDEXED keeps
# the planner on the rowid range (the rows about to go) rather than a scan of the
# covering trace index, which would read the whole table. The tags of those spans
# go too (tags of the traces' later spans when the threshold passes them: a tag is
# read only through its span).
_EVICT = (
    """
DELETE FROM spans WHERE trace_key IN (
    SELECT DISTINCT trace_key FROM spans NOT INDEXED WHERE seq <= ?
)
""",
    "DELETE FROM tags WHERE seq <= ?",
)

# Built once: json.dumps with options makes a new encoder per call. default=str: spans
# built by hand may carry values the SDK would have refused.
_json = json.JSONEncoder(separators=(",", ":"), default=str).encode
_KINDS = {kind: kind.name.lower() for kind in SpanKind}
_KEY_PREFIX_LENGTH = len(attr.KEY_PREFIX)
# How a key's name starts in the attributes' JSON: most spans carry no key, and a
# search of the text says so for a third of what a look at every name costs.
_KEY_MARK = _json(attr.KEY_PREFIX)[:-1]


def _add_rows(span: ReadableSpan, index: int, spans: list[object], tags: list[Any]) -> None:
    """Appends the span's row to `spans` and its tags' rows to `tags` (values one
    after the other). Their seq is left to the write: None in the span's row, the
    span's `index` in the batch in its tags'."""
    context = span.context
    if context is None:
        raise ValueError(f"span {span.name!r} has no context")
    attributes = dict(span.attributes or {})
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
    encoded = _json(attributes)
    spans += (
        None,
        trace_key(context.trace_id),
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
        encoded,
        events,
    )
    if _KEY_MARK not in encoded:
        return
    for name in [name for name in attributes if name.startswith(attr.KEY_PREFIX)]:
        value = attributes[name]
        # A span may carry several values of one key (tracing/tags.py).
        for one in value if isinstance(value, (list, tuple)) else (value,):
            tags += (index, name[_KEY_PREFIX_LENGTH:], str(one))


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
        span_values: list[object] = []
        tag_values: list[Any] = []
        try:
            for index, span in enumerate(spans):
                _add_rows(span, index, span_values, tag_values)
        except (ValueError, TypeError) as error:
            _log.error("trace_store_rejected_batch", spans=len(spans), reason=str(error))
            return SpanExportResult.FAILURE
        with self._lock:
            if self._shut_down:
                return SpanExportResult.FAILURE
            written = self._guarded(lambda: self._write(span_values, tag_values))
        return SpanExportResult.SUCCESS if written else SpanExportResult.FAILURE

    def fill(self) -> tuple[int, int] | None:
        """(spans the store holds, its bound `max_spans`), for monitoring; None when the
        store cannot be read now. Eviction keeps it at the bound once it is full."""
        held: list[int] = []

        def count() -> None:
            connection = self._connection or self._open()
            held.append(connection.execute("SELECT count(*) FROM spans").fetchone()[0])

        with self._lock:
            if self._shut_down or not self._guarded(count):
                return None
        return held[0], self._max_spans

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
            create_or_replace_layout(connection)
        except BaseException:
            connection.close()
            raise
        variables = connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self._rows_per_statement = min(_ROWS_PER_STATEMENT, variables // _SPAN_COLUMN_COUNT)
        self._connection = connection
        return connection

    def _write(self, spans: list[object], tags: list[Any]) -> None:
        """Stores the rows' values (as _add_rows left them), then evicts."""
        connection = self._connection or self._open()
        with immediate_transaction(connection):
            # The write lock is held: nobody else numbers spans until the commit.
            (newest,) = connection.execute("SELECT max(seq) FROM spans").fetchone()
            first = (newest or 0) + 1
            count = len(spans) // _SPAN_COLUMN_COUNT
            spans[::_SPAN_COLUMN_COUNT] = range(first, first + count)
            tags[::_TAG_COLUMN_COUNT] = [first + index for index in tags[::_TAG_COLUMN_COUNT]]
            self._insert(connection, _INSERT_SPANS, _SPAN_COLUMN_COUNT, spans)
            self._insert(connection, _INSERT_TAGS, _TAG_COLUMN_COUNT, tags)
            threshold = first + count - 1 - self._max_spans
            if threshold > 0:
                for statement in _EVICT:
                    connection.execute(statement, (threshold,))

    def _insert(
        self, connection: sqlite3.Connection, insert: str, columns: int, values: list[object]
    ) -> None:
        """Runs `insert` (up to VALUES) on `values`, rows of `columns` values each."""
        row = "(" + ", ".join("?" * columns) + ")"
        step = self._rows_per_statement * columns
        for first in range(0, len(values), step):
            chunk = values[first : first + step]
            connection.execute(insert + ", ".join([row] * (len(chunk) // columns)), chunk)

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
