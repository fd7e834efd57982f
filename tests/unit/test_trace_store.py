"""The local trace store: real SDK spans into a real SQLite file, read back."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from types import ModuleType

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from structlog.testing import capture_logs

from deptmesh.sidecar.errors import TraceStoreError
from deptmesh.sidecar.tracing import store as trace_store
from deptmesh.sidecar.tracing.attributes import (
    CALLER_SERVICE,
    DENIED_EVENT,
    REASON,
    SERVICE,
)
from deptmesh.sidecar.tracing.store import (
    LAYOUT_VERSION,
    TraceStore,
    TraceStoreExporter,
    default_store_path,
)
from deptmesh.sidecar.tracing.tags import key_attribute

SERVER, CLIENT, INTERNAL = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL
CLAIM, EMPLOYEE = key_attribute("claim"), key_attribute("employee")


def tracer_of(provider_exporter: SpanExporter, service: str, providers: list[TracerProvider]):
    provider = TracerProvider(
        resource=Resource.create({"service.name": service}), shutdown_on_exit=False
    )
    provider.add_span_processor(SimpleSpanProcessor(provider_exporter))
    providers.append(provider)
    return provider.get_tracer("tests")


@pytest.fixture
def path(tmp_path):
    return tmp_path / "state" / "traces.sqlite"


@pytest.fixture
def tracers(path):
    """tracer(service) -> a tracer whose spans go straight into the store at `path`."""
    exporter = TraceStoreExporter(path)
    providers: list[TracerProvider] = []
    yield lambda service: tracer_of(exporter, service, providers)
    for provider in providers:
        provider.shutdown()
    exporter.shutdown()


@pytest.fixture
def store(path, tracers):
    tracers("nobody")  # creates the store
    with TraceStore(path) as store:
        yield store


def remote_parent(trace_id: int, span_id: int):
    context = SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(1))
    return trace.set_span_in_context(NonRecordingSpan(context))


def rows(path, sql, *parameters):
    connection = sqlite3.connect(path)
    try:
        return connection.execute(sql, parameters).fetchall()
    finally:
        connection.close()


class TestTraceStoreExporter:
    def test_spans_read_back_with_parent_links_attributes_and_events(self, tracers, store):
        """A server span and its client child come back with ids, parent, kind, times,
        status, service, attributes and events."""
        tracer = tracers("reimbursement")
        with (
            tracer.start_as_current_span(
                "deptmesh.reimbursement.v1.ReimbursementService/ApproveClaim",
                kind=SERVER,
                attributes={CALLER_SERVICE: "web", CLAIM: "clm_1", "tags": ["a", "b"]},
            ) as server,
            tracer.start_as_current_span("hr call", kind=CLIENT) as client,
        ):
            client.add_event(DENIED_EVENT, {REASON: "ACCESS_DENIED"}, timestamp=1234)
            client.set_status(Status(StatusCode.ERROR, "denied"))
            client.set_attribute("rpc.grpc.status_code", 7)
        trace_id = format(server.get_span_context().trace_id, "032x")

        parent, child = store.spans_of(trace_id)

        assert parent.span_id == format(server.get_span_context().span_id, "016x")
        assert (parent.parent_span_id, parent.kind, parent.service) == (
            None,
            "server",
            "reimbursement",
        )
        assert parent.attributes == {CALLER_SERVICE: "web", CLAIM: "clm_1", "tags": ["a", "b"]}
        assert (child.trace_id, child.parent_span_id, child.kind) == (
            trace_id,
            parent.span_id,
            "client",
        )
        assert (child.status, child.status_description) == ("ERROR", "denied")
        assert child.attributes == {"rpc.grpc.status_code": 7}
        assert [(e.name, e.time_ns, dict(e.attributes)) for e in child.events] == [
            (DENIED_EVENT, 1234, {REASON: "ACCESS_DENIED"})
        ]
        assert parent.start_ns <= child.start_ns <= child.end_ns <= parent.end_ns
        assert len(trace_id) == 32
        assert len(parent.span_id) == 16

    def test_the_service_comes_from_the_resource_else_the_span(self, tracers, store, path):
        """A span's service is its resource's service.name; where the resource has
        none, the span's deptmesh.service attribute."""
        tracers("hr").start_span("named", attributes={SERVICE: "ignored"}).end()
        exporter = TraceStoreExporter(path)
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        tracer = provider.get_tracer("tests")
        tracer.start_span("attributed", attributes={SERVICE: "finance"}).end()
        tracer.start_span("anonymous").end()
        provider.shutdown()
        named, attributed, anonymous = rows(path, "SELECT name, service FROM spans ORDER BY seq")
        assert (named, attributed) == (("named", "hr"), ("attributed", "finance"))
        assert anonymous[1].startswith("unknown_service")  # the SDK's default name

    def test_an_unknown_trace_has_no_spans(self, store):
        """spans_of a trace that was never stored is empty."""
        assert store.spans_of("0" * 32) == []

    def test_a_tag_finds_every_trace_about_it(self, tracers, store):
        """trace_ids_tagged lists the traces with a span carrying the key's value, earliest
        first."""
        tracer = tracers("reimbursement")
        ids = []
        for start, claim in [(10, "clm_1"), (20, "clm_2"), (30, "clm_1")]:
            span = tracer.start_span("call", kind=SERVER, start_time=start)
            span.set_attribute(CLAIM, claim)
            span.end(end_time=start + 1)
            ids.append(format(span.get_span_context().trace_id, "032x"))
        assert store.trace_ids_tagged("claim", "clm_1") == [ids[0], ids[2]]
        assert store.trace_ids_tagged("claim", "clm_3") == []
        assert store.trace_ids_tagged("employee", "clm_1") == []

    def test_any_key_name_is_indexed_with_every_value(self, tracers, store, path):
        """Keys of any name are found; a span with several values of one key is found by
        each, and a trace whose spans repeat a value is found once."""
        tracer = tracers("hr")
        with tracer.start_as_current_span("call", kind=SERVER, start_time=10) as server:
            server.set_attribute(EMPLOYEE, ["E1", "E2"])
            tracer.start_span("hop", kind=CLIENT, attributes={EMPLOYEE: "E1"}).end()
            tracer.start_span("hop", kind=CLIENT, attributes={"deptmesh.key.x.y-z": "7"}).end()
        trace_id = format(server.get_span_context().trace_id, "032x")
        assert store.trace_ids_tagged("employee", "E1") == [trace_id]
        assert store.trace_ids_tagged("employee", "E2") == [trace_id]
        assert store.trace_ids_tagged("x.y-z", "7") == [trace_id]
        assert rows(path, "SELECT name, value FROM tags ORDER BY name, value") == [
            ("employee", "E1"),
            ("employee", "E1"),
            ("employee", "E2"),
            ("x.y-z", "7"),
        ]

    def test_only_key_attributes_are_tags(self, tracers, store, path):
        """An attribute whose value merely reads like a key's name is no tag; a key whose
        name is not ASCII is one."""
        tracer = tracers("hr")
        tracer.start_span("call", attributes={"note": '"deptmesh.key.claim":"c1"'}).end()
        tracer.start_span("call", attributes={key_attribute("naïve"): "1"}).end()
        assert rows(path, "SELECT name, value FROM tags") == [("naïve", "1")]

    def test_an_evicted_trace_is_found_by_no_tag_and_its_tags_go(self, path):
        """When the bound drops a trace, no tag finds it any more, and its tags are
        deleted with its spans (those of its later spans once the bound passes them)."""
        exporter = TraceStoreExporter(path, max_spans=10)
        providers: list[TracerProvider] = []
        tracer = tracer_of(exporter, "reimbursement", providers)
        for number in range(30):
            with tracer.start_as_current_span(
                "call", kind=SERVER, attributes={CLAIM: f"c{number}"}
            ):
                tracer.start_span("hop", kind=CLIENT, attributes={CLAIM: f"c{number}"}).end()
        providers[0].shutdown()
        exporter.shutdown()

        with TraceStore(path) as store:
            found = {n for n in range(30) if store.trace_ids_tagged("claim", f"c{n}")}
        assert found == set(range(25, 30))
        (tags,) = rows(path, "SELECT count(*) FROM tags")[0]
        assert tags == 10  # the kept spans' tags, one each

    def test_last_trace_is_the_one_whose_root_started_last(self, tracers, store):
        """The last trace is the latest-starting server or client span with no stored
        parent: a remote parent counts as missing, internal spans do not count."""
        tracer = tracers("hr")
        early = tracer.start_span("early", kind=SERVER, start_time=100)
        early.end(end_time=900)  # ends last, but started first
        remote = tracer.start_span(
            "from outside", kind=SERVER, start_time=200, context=remote_parent(7, 8)
        )
        child = tracer.start_span(
            "child", kind=CLIENT, start_time=300, context=trace.set_span_in_context(early)
        )
        child.end(end_time=400)
        remote.end(end_time=300)
        tracer.start_span("background", kind=INTERNAL, start_time=500).end(end_time=600)

        assert store.last_trace_id() == format(remote.get_span_context().trace_id, "032x")

    def test_an_empty_store_has_no_last_trace(self, store):
        """last_trace_id is None before any span is stored."""
        assert store.last_trace_id() is None

    def test_the_trace_store_stays_within_its_size_bound_after_100k_spans(self, path):
        """100k spans through the SDK's BatchSpanProcessor into a store bounded at 25k
        leave at most 25k spans: the newest traces, each whole."""
        bound, traces, per_trace = 25_000, 10_000, 10
        exporter = TraceStoreExporter(path, max_spans=bound)
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(
            BatchSpanProcessor(
                exporter, max_queue_size=traces * per_trace, max_export_batch_size=512
            )
        )
        tracer = provider.get_tracer("tests")
        for number in range(traces):
            with tracer.start_as_current_span(f"trace-{number}", kind=SERVER):
                for _ in range(per_trace - 1):
                    tracer.start_span("hop", kind=CLIENT).end()
        assert provider.force_flush(timeout_millis=60_000)
        provider.shutdown()

        (count,) = rows(path, "SELECT count(*) FROM spans")[0]
        assert bound - per_trace < count <= bound
        kept = sorted(
            int(name.removeprefix("trace-"))
            for (name,) in rows(path, "SELECT name FROM spans WHERE kind = 'server'")
        )
        assert kept == list(range(traces - len(kept), traces))  # the newest, none skipped
        sizes = rows(path, "SELECT count(*) FROM spans GROUP BY trace_id")
        assert {size for (size,) in sizes} == {per_trace}  # no trace cut in half

    def test_writers_in_two_processes_lose_no_spans(self, path):
        """A second process writing the same file at the same time: every span of both
        is stored and neither reports the database locked."""
        spans = 1500
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(spans)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            exporter = TraceStoreExporter(path)
            provider = TracerProvider(
                resource=Resource.create({"service.name": "here"}), shutdown_on_exit=False
            )
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            tracer = provider.get_tracer("tests")
            assert writer.stdout is not None
            assert writer.stdin is not None
            assert writer.stdout.readline() == "ready\n"
            writer.stdin.write("go\n")
            writer.stdin.flush()
            with capture_logs() as logs:
                for _ in range(spans):
                    tracer.start_span("here", kind=SERVER).end()
            out, err = writer.communicate(timeout=60)
        finally:
            if writer.poll() is None:
                writer.kill()
                writer.communicate()
        provider.shutdown()

        assert (writer.returncode, out, err) == (0, f"{spans} ok\n", "")
        assert logs == []
        assert rows(path, "SELECT service, count(*) FROM spans GROUP BY service") == [
            ("here", spans),
            ("there", spans),
        ]

    def test_a_store_that_cannot_be_written_fails_open(self, tmp_path):
        """An exporter whose file cannot be created logs once and reports FAILURE; it
        never raises into the SDK or the call."""
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("")
        with capture_logs() as logs:
            exporter = TraceStoreExporter(blocker / "traces.sqlite")
            provider = TracerProvider(shutdown_on_exit=False)
            provider.add_span_processor(SimpleSpanProcessor(exporter))
            provider.get_tracer("tests").start_span("call").end()
            provider.get_tracer("tests").start_span("call").end()
            provider.shutdown()
        assert [log["event"] for log in logs] == ["trace_store_unavailable"]
        assert exporter.export([]) is SpanExportResult.FAILURE

    def test_export_after_shutdown_fails(self, path):
        """An exporter that was shut down accepts nothing more."""
        exporter = TraceStoreExporter(path)
        assert exporter.export([]) is SpanExportResult.SUCCESS
        exporter.shutdown()
        assert exporter.export([]) is SpanExportResult.FAILURE

    def test_the_bound_must_be_positive(self, path):
        """max_spans below 1 is a configuration error."""
        with pytest.raises(ValueError, match="max_spans"):
            TraceStoreExporter(path, max_spans=0)

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


# A second process: opens the store while the test does, waits for "go", then ends
# one span at a time, each exported in its own transaction.
WRITER = """
import sys
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind
from deptmesh.sidecar.tracing.store import TraceStoreExporter

path, spans = sys.argv[1], int(sys.argv[2])
exporter = TraceStoreExporter(path)
resource = Resource.create({"service.name": "there"})
provider = TracerProvider(resource=resource, shutdown_on_exit=False)
provider.add_span_processor(SimpleSpanProcessor(exporter))
tracer = provider.get_tracer("writer")
print("ready", flush=True)
assert sys.stdin.readline() == "go\\n"
for _ in range(spans):
    tracer.start_span("there", kind=SpanKind.SERVER).end()
provider.shutdown()
print(f"{spans} ok", flush=True)
"""
