"""The trace store's file: its tables, their versioned layout, its write lock.

Two tables. `spans` holds one row per span; `seq` is the rowid, numbered by
the writer from max(seq) + 1 up: the order spans were stored in, so that the
writer's eviction threshold is a range on the primary key. A trace is found by
`trace_key`, the top 63 bits of its id: an integer index costs a third of what
one on the 32-character id costs per insert (bench/spans.py's store_us). The
spans of a trace are those with its key and its id.

`tags` indexes the business keys spans carry (`deptmesh.key.<name>` attributes,
tracing/tags.py): a row (seq, name, value) per key value of the span `seq`.
Only spans with a key write one, appended in seq order, plus one entry in the
index by (name, value) that `deptmesh trace --tag name=value` reads. Tags go
by seq range, as spans do: a tag of an evicted trace's later span may outlive
its span for a while, and is never read, as a tag finds traces only through
its span.

The layout's version is the file's `PRAGMA user_version`: 0, before versions;
1 added trace_key and a column for one business key; 2 (this one) has the
`tags` table instead of that column. A writer that finds an older layout
empties the store and writes this one (it holds recent traces only); it leaves
a newer one alone. A reader reads this layout only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import structlog

__all__ = [
    "BUSY_TIMEOUT_S",
    "LAYOUT_VERSION",
    "SPAN_COLUMNS",
    "STORED_SPAN_COLUMNS",
    "TAG_COLUMNS",
    "create_or_replace_layout",
    "immediate_transaction",
    "trace_key",
]

_log = structlog.get_logger("deptmesh.sidecar")

LAYOUT_VERSION = 2
# How long a writer waits for another process's transaction before dropping its batch,
# and a reader for a checkpoint.
BUSY_TIMEOUT_S = 5.0

_TABLES = (
    """
CREATE TABLE spans (
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
    attributes TEXT NOT NULL,
    events TEXT NOT NULL
)""",
    "CREATE INDEX spans_by_trace ON spans (trace_key)",
    "CREATE INDEX spans_by_start ON spans (start_ns)",
    """
CREATE TABLE tags (
    seq INTEGER NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (seq, name, value)
) WITHOUT ROWID""",
    "CREATE INDEX tags_by_value ON tags (name, value)",
)
# What a reader reads of a span, in SpanRecord's order.
SPAN_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, kind, service, start_ns, end_ns,"
    " status, status_description, attributes, events"
)
STORED_SPAN_COLUMNS = f"seq, trace_key, {SPAN_COLUMNS}"
TAG_COLUMNS = "seq, name, value"


def trace_key(trace_id: int) -> int:
    """The index key of a trace: the top 63 bits of its 128-bit id (a positive int64)."""
    return trace_id >> 65


def create_or_replace_layout(connection: sqlite3.Connection) -> None:
    """Creates the tables of this layout; a store of an older layout is emptied first.
    Raises sqlite3.DatabaseError, writing nothing, on a newer layout."""
    with immediate_transaction(connection):
        (version,) = connection.execute("PRAGMA user_version").fetchone()
        if version > LAYOUT_VERSION:
            raise sqlite3.DatabaseError(
                f"the trace store has layout {version};"
                f" this deptmesh writes layout {LAYOUT_VERSION}"
            )
        if version == LAYOUT_VERSION:
            return
        if connection.execute(
            "SELECT 1 FROM sqlite_master WHERE name IN ('spans', 'tags')"
        ).fetchone():
            _log.info("trace_store_emptied", reason="older layout", layout=version)
        for table in ("spans", "tags"):
            connection.execute(f"DROP TABLE IF EXISTS {table}")  # its indexes go with it
        for statement in _TABLES:
            connection.execute(statement)
        connection.execute(f"PRAGMA user_version = {LAYOUT_VERSION}")


@contextmanager
def immediate_transaction(connection: sqlite3.Connection) -> Iterator[None]:
    """A transaction holding the write lock from its start."""
    # IMMEDIATE takes the write lock up front, so waiting for it honours busy_timeout
    # instead of failing when a read would have to be upgraded to a write.
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")
