"""The trace store as the portal reads it: recent traces, the server spans of a window
(latency per edge, refusals), one trace's spans; a store that is missing or cannot be
read is a source the page says is unavailable."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from deptmesh.services.portal.unavailable import SourceUnavailable
from deptmesh.sidecar.errors import TraceStoreError
from deptmesh.sidecar.tracing.store import SpanRecord, TraceStore, TraceSummary

__all__ = ["TraceSummary", "TraceWindow"]


class TraceWindow:
    """Read-only queries over the trace store at `path`, opened per page."""

    def __init__(self, path: Path) -> None:
        if not path.is_file():
            raise SourceUnavailable(
                f"no trace store at {path}: no service has traced a call there yet"
            )
        with _readable():
            self._store = TraceStore(path)

    def close(self) -> None:
        self._store.close()

    def recent_traces(self, since_ns: int, limit: int) -> list[TraceSummary]:
        """The last `limit` traces that started since `since_ns`, the latest first."""
        with _readable():
            return self._store.recent_traces(since_ns, limit)

    def server_spans(self, since_ns: int) -> list[SpanRecord]:
        """Every server span that started since `since_ns`, the latest first."""
        with _readable():
            return self._store.server_spans(since_ns)

    def spans_of(self, trace_id: str) -> list[SpanRecord]:
        """One trace's spans, by start time; empty when the store does not hold it."""
        with _readable():
            return self._store.spans_of(trace_id)


@contextmanager
def _readable() -> Iterator[None]:
    """A store that cannot be read is a source the page says is unavailable."""
    try:
        yield
    except TraceStoreError as error:
        raise SourceUnavailable(str(error)) from None
