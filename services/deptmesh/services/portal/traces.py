"""The trace store as the portal reads it: recent traces, the server spans of a window
(latency per edge, refusals), one trace's spans.

One trace comes from the store's reader (deptmesh.sidecar.tracing.store); the
queries over a window read the store's documented `spans` table (layout.py)
directly, read-only, through its index on start time: the reader answers
`deptmesh trace`'s questions, which are about one trace.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deptmesh.services.portal.unavailable import SourceUnavailable
from deptmesh.sidecar.errors import TraceStoreError
from deptmesh.sidecar.tracing.store import BUSY_TIMEOUT_S, LAYOUT_VERSION, SpanEvent, SpanRecord
from deptmesh.sidecar.tracing.store import TraceStore as TraceStoreReader
from deptmesh.sidecar.tracing.store.layout import SPAN_COLUMNS

__all__ = ["TraceSummary", "TraceWindow"]

# Per trace: when it started and ended, how many spans, whether one failed.
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


@dataclass(frozen=True, slots=True)
class TraceSummary:
    trace_id: str
    name: str  # the first span's
    service: str
    start_ns: int
    duration_ns: int
    spans: int
    failed: bool


class TraceWindow:
    """Read-only queries over the trace store at `path`, opened per page."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise SourceUnavailable(
                f"no trace store at {path}: no service has traced a call there yet"
            )
        self._path = path
        try:
            self._connection = sqlite3.connect(
                f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_TIMEOUT_S
            )
            (layout,) = self._connection.execute("PRAGMA user_version").fetchone()
        except sqlite3.Error as error:
            raise SourceUnavailable(f"the trace store at {path} cannot be read: {error}") from None
        if layout != LAYOUT_VERSION:
            self._connection.close()
            raise SourceUnavailable(
                f"the trace store at {path} has layout {layout}; this portal reads"
                f" layout {LAYOUT_VERSION}"
            )

    def close(self) -> None:
        self._connection.close()

    def recent_traces(self, since_ns: int, limit: int) -> list[TraceSummary]:
        """The last `limit` traces that started since `since_ns`, the latest first."""
        found = []
        for trace_id, start, end, count, failed in self._rows(_RECENT_TRACES, (since_ns, limit)):
            first = self._rows(_FIRST_SPAN, (trace_id,))
            name, service = first[0] if first else ("?", "?")
            found.append(
                TraceSummary(trace_id, name, service, start, end - start, count, bool(failed))
            )
        return found

    def server_spans(self, since_ns: int) -> list[SpanRecord]:
        """Every server span that started since `since_ns`, the latest first."""
        return [_record(row) for row in self._rows(_SERVER_SPANS, (since_ns,))]

    def spans_of(self, trace_id: str) -> list[SpanRecord]:
        """One trace's spans, by start time; empty when the store does not hold it."""
        try:
            with TraceStoreReader(self._path) as reader:
                return reader.spans_of(trace_id)
        except TraceStoreError as error:
            raise SourceUnavailable(str(error)) from None

    def _rows(self, sql: str, parameters: tuple[object, ...]) -> list[tuple[Any, ...]]:
        try:
            return self._connection.execute(sql, parameters).fetchall()
        except sqlite3.Error as error:
            raise SourceUnavailable(
                f"the trace store at {self._path} cannot be read: {error}"
            ) from None


def _record(row: Sequence[Any]) -> SpanRecord:
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
