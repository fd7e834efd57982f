"""The trace store's versioned layout, where it lives, and its face."""

from __future__ import annotations

from types import ModuleType

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanKind
from structlog.testing import capture_logs

from deptmesh.sidecar.errors import TraceStoreError
from deptmesh.sidecar.tracing import store as trace_store
from deptmesh.sidecar.tracing.store import (
    LAYOUT_VERSION,
    TraceStore,
    TraceStoreExporter,
    default_store_path,
)
from deptmesh.sidecar.tracing.tags import key_attribute
from tests.unit.trace_store_helpers import rows, tracer_of

SERVER = SpanKind.SERVER
CLAIM = key_attribute("claim")


@pytest.fixture
def path(tmp_path):
    return tmp_path / "state" / "traces.sqlite"


class TestWriterLayout:
    def test_the_database_is_in_wal_mode(self, path):
        """Readers do not block writers: the store is a WAL database."""
        TraceStoreExporter(path).shutdown()
        assert rows(path, "PRAGMA journal_mode") == [("wal",)]

    def test_a_store_of_an_older_layout_is_emptied_and_written_anew(self, path):
        """A store written by an earlier deptmesh (no layout version, no trace_key) is
        replaced, saying so, and then read back like any other."""
        path.parent.mkdir(parents=True)
        rows(path, "CREATE TABLE spans (seq INTEGER PRIMARY KEY, trace_id TEXT NOT NULL)")
        rows(path, "INSERT INTO spans (trace_id) VALUES ('0af7651916cd43dd8448eb211c80319c')")
        with capture_logs() as logs:
            exporter = TraceStoreExporter(path)
        providers: list[TracerProvider] = []
        tracer_of(exporter, "hr", providers).start_span("call", kind=SERVER).end()
        providers[0].shutdown()

        assert [(log["event"], log["layout"]) for log in logs] == [("trace_store_emptied", 0)]
        with TraceStore(path) as store:
            [span] = store.spans_of(store.last_trace_id() or "")
        assert (span.name, span.service) == ("call", "hr")
        assert rows(path, "SELECT count(*) FROM spans") == [(1,)]

    def test_a_store_of_layout_1_is_emptied_once_and_then_indexes_tags(self, path):
        """A store of layout 1 (a column for one business key, no tags table) is emptied
        when the first writer opens it, gets this layout's tags table, and is not emptied
        again by the next writer."""
        path.parent.mkdir(parents=True)
        rows(path, LAYOUT_1)
        rows(path, "INSERT INTO spans (trace_key, trace_id, claim_id) VALUES (1, 'a', 'c1')")
        rows(path, "PRAGMA user_version = 1")
        with capture_logs() as logs:
            first = TraceStoreExporter(path)
        providers: list[TracerProvider] = []
        span = tracer_of(first, "reimbursement", providers).start_span(
            "call", kind=SERVER, attributes={CLAIM: "c2"}
        )
        span.end()
        providers[0].shutdown()
        with capture_logs() as later_logs:
            TraceStoreExporter(path).shutdown()

        assert [(log["event"], log["layout"]) for log in logs] == [("trace_store_emptied", 1)]
        assert later_logs == []
        assert rows(path, "PRAGMA user_version") == [(LAYOUT_VERSION,)]
        with TraceStore(path) as store:
            assert store.trace_ids_tagged("claim", "c1") == []
            assert store.trace_ids_tagged("claim", "c2") == [
                format(span.get_span_context().trace_id, "032x")
            ]
            assert store.span_count() == 1

    def test_a_store_of_a_newer_layout_is_left_alone(self, path):
        """A store written by a later deptmesh is not ours to change: nothing is written."""
        path.parent.mkdir(parents=True)
        rows(path, "CREATE TABLE spans (seq INTEGER PRIMARY KEY, future TEXT)")
        rows(path, "PRAGMA user_version = 99")
        with capture_logs() as logs:
            exporter = TraceStoreExporter(path)
        assert exporter.export([]) is SpanExportResult.FAILURE
        exporter.shutdown()

        assert [log["event"] for log in logs] == ["trace_store_unavailable"]
        assert "layout 99" in logs[0]["reason"]
        assert rows(path, "PRAGMA user_version") == [(99,)]
        assert rows(path, "SELECT name FROM pragma_table_info('spans')") == [("seq",), ("future",)]


class TestTraceStore:
    def test_a_missing_store_is_an_error(self, tmp_path):
        """Opening a path where no store exists raises TraceStoreError, creating nothing."""
        with pytest.raises(TraceStoreError, match="no trace store at"):
            TraceStore(tmp_path / "absent.sqlite")
        assert list(tmp_path.iterdir()) == []

    def test_a_file_that_is_not_a_store_is_an_error(self, tmp_path):
        """Reading a file that is not a trace store raises TraceStoreError."""
        other = tmp_path / "other.sqlite"
        other.write_bytes(b"x" * 4096)
        with TraceStore(other) as store, pytest.raises(TraceStoreError, match="cannot read"):
            store.last_trace_id()

    def test_a_store_of_another_layout_is_an_error_naming_both(self, tmp_path):
        """Reading a store written by another deptmesh version says which layouts differ."""
        older = tmp_path / "older.sqlite"
        rows(older, "CREATE TABLE spans (seq INTEGER PRIMARY KEY, trace_id TEXT NOT NULL)")
        with TraceStore(older) as store, pytest.raises(TraceStoreError, match="has layout 0"):
            store.last_trace_id()

    def test_a_store_of_layout_1_is_an_error_naming_both(self, tmp_path):
        """A store of the previous layout, not yet rewritten by a service, is not read:
        the error names its layout and the one this deptmesh reads."""
        older = tmp_path / "older.sqlite"
        rows(older, LAYOUT_1)
        rows(older, "PRAGMA user_version = 1")
        with TraceStore(older) as store, pytest.raises(TraceStoreError) as raised:
            store.trace_ids_tagged("claim", "c1")
        assert f"has layout 1; this deptmesh reads layout {LAYOUT_VERSION}" in str(raised.value)


class TestDefaultStorePath:
    def test_the_environment_variable_wins(self, tmp_path):
        """DEPTMESH_TRACE_STORE names the file."""
        environ = {"DEPTMESH_TRACE_STORE": str(tmp_path / "t.db"), "XDG_STATE_HOME": "/x"}
        assert default_store_path(environ) == tmp_path / "t.db"

    def test_xdg_state_home_is_next(self):
        """Without it, the store is under $XDG_STATE_HOME/deptmesh."""
        path = default_store_path({"XDG_STATE_HOME": "/var/state"})
        assert str(path) == "/var/state/deptmesh/traces.sqlite"

    @pytest.mark.parametrize("environ", [{}, {"XDG_STATE_HOME": "relative"}])
    def test_otherwise_the_home_state_directory(self, environ, monkeypatch, tmp_path):
        """Otherwise (or when XDG_STATE_HOME is not absolute) ~/.local/state/deptmesh."""
        monkeypatch.setenv("HOME", str(tmp_path))
        path = default_store_path(environ)
        assert path == tmp_path / ".local" / "state" / "deptmesh" / "traces.sqlite"


class TestPublicSurface:
    def test_exported_members(self):
        """The store's face exports exactly the public names it imports, sorted."""
        public = {
            name
            for name, value in vars(trace_store).items()
            if not name.startswith("_") and not isinstance(value, ModuleType)
        }
        assert set(trace_store.__all__) == public
        assert trace_store.__all__ == sorted(trace_store.__all__)


# Layout 1, as deptmesh wrote it before business keys were tags.
LAYOUT_1 = """
CREATE TABLE spans (
    seq INTEGER PRIMARY KEY, trace_key INTEGER NOT NULL, trace_id TEXT NOT NULL,
    span_id TEXT NOT NULL DEFAULT '', parent_span_id TEXT, name TEXT NOT NULL DEFAULT '',
    kind TEXT NOT NULL DEFAULT '', service TEXT NOT NULL DEFAULT '',
    start_ns INTEGER NOT NULL DEFAULT 0, end_ns INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT '', status_description TEXT NOT NULL DEFAULT '',
    claim_id TEXT, attributes TEXT NOT NULL DEFAULT '{}', events TEXT NOT NULL DEFAULT '[]'
)
"""
