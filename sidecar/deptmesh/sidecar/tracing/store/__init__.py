"""The local trace store: finished spans in one SQLite file per host, no server needed.

writer.py is the `SpanExporter` services write through (off the request path,
under a batch processor); reader.py what `deptmesh trace` reads, as the records
of records.py; layout.py the file's tables and their versioned layout;
location.py where the file is by default.
"""

from deptmesh.sidecar.tracing.store.layout import BUSY_TIMEOUT_S, LAYOUT_VERSION
from deptmesh.sidecar.tracing.store.location import default_store_path
from deptmesh.sidecar.tracing.store.reader import TraceStore
from deptmesh.sidecar.tracing.store.records import SpanEvent, SpanRecord, TraceSummary
from deptmesh.sidecar.tracing.store.writer import DEFAULT_MAX_SPANS, TraceStoreExporter

__all__ = [
    "BUSY_TIMEOUT_S",
    "DEFAULT_MAX_SPANS",
    "LAYOUT_VERSION",
    "SpanEvent",
    "SpanRecord",
    "TraceStore",
    "TraceStoreExporter",
    "TraceSummary",
    "default_store_path",
]
