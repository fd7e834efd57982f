"""The trace store's reader: what `deptmesh trace` and the portal show.

The spans of one trace, the latest trace, the traces tagged with a business
key's value (`deptmesh trace --tag name=value`), and over a window of time the
recent traces and the server spans (the portal's latency per edge and its
refusals; both through the index on start time). Read-only: writers keep
writing meanwhile. A store of another layout is an error naming both layouts.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from types import TracebackType
from typing import Any

from deptmesh.sidecar.errors import TraceStoreError
from deptmesh.sidecar.tracing.store.layout import (
    BUSY_TIMEOUT_S,
    LAYOUT_VERSION,
    SPAN_COLUMNS,
    trace_key,
)
from deptmesh.sidecar.tracing.store.records import SpanEvent, SpanRecord, TraceSummary

__all__ = ["TraceStore"]

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
# The traces of the spans with a tag, by when the first of those spans started. A
# tag whose span was evicted finds nothing.
_TAGGED_TRACES = """
SELECT s.trace_id FROM tags AS t JOIN spans AS s ON s.seq = t.seq
WHERE t.name = ? AND t.value = ?
GROUP BY s.trace_id
ORDER BY min(s.start_ns), s.trace_id
"""
# Per trace that began in the window: its first span, when it started and ended, how
# many spans it has, whether one failed.
_RECENT_TRACES = """
SELECT trace_id, min(start_ns), max(end_ns), count(*), max(status = 'ERROR')
FROM spans WHERE start_ns >= ?
GROUP BY trace_id ORDER BY min(start_ns) DESC LIMIT ?
"""
_FIRST_SPAN = "SELECT name, service FROM spans WHERE trace_id = ? ORDER BY start_ns, seq LIMIT 1"
_SERVER_SPANS = (
    f"SELECT {SPAN_COLUMNS} FROM spans WHERE start_ns >= ? AND kind = 'server'"
    " ORDER BY start_ns DESC, seq DESC"
)


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
            key = trace_key(int(trace_id, 16))
        except ValueError:
            return []  # not a trace id: no trace has it
        rows = self._query(
            f"SELECT {SPAN_COLUMNS} FROM spans WHERE trace_key = ? AND trace_id = ?"
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

    def trace_ids_tagged(self, name: str, value: str) -> list[str]:
        """Every trace with a span carrying business key `name` = `value`, the earliest
        first."""
        rows = self._query(_TAGGED_TRACES, (name, value))
        return [str(trace_id) for (trace_id,) in rows]

    def recent_traces(self, since_ns: int, limit: int) -> list[TraceSummary]:
        """The last `limit` traces that started since `since_ns`, the latest first."""
        found = []
        for trace_id, start, end, count, failed in self._query(_RECENT_TRACES, (since_ns, limit)):
            first = self._query(_FIRST_SPAN, (trace_id,))
            name, service = first[0] if first else ("?", "?")
            found.append(
                TraceSummary(trace_id, name, service, start, end - start, count, bool(failed))
            )
        return found

    def server_spans(self, since_ns: int) -> list[SpanRecord]:
        """Every server span that started since `since_ns`, the latest first."""
        rows = self._query(_SERVER_SPANS, (since_ns,))
        try:
            return [_record(row) for row in rows]
        except (ValueError, KeyError, TypeError) as error:
            raise TraceStoreError(f"a span in {self._path} is malformed") from error

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
                if layout != LAYOUT_VERSION:
                    raise TraceStoreError(
                        f"the trace store at {self._path} has layout {layout}; this deptmesh"
                        f" reads layout {LAYOUT_VERSION} (its services rewrite the store"
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
    (status, description, attributes, events) = row[8:]
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
