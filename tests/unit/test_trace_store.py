"""The local trace store: real SDK spans into a real SQLite file, read back."""

from __future__ import annotations

import subprocess
import sys

import pytest
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
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

from deptmesh.sidecar.tracing.attributes import (
    CALLER_SERVICE,
    DENIED_EVENT,
    REASON,
    SERVICE,
)
from deptmesh.sidecar.tracing.store import (
    TraceStore,
    TraceStoreExporter,
)
from deptmesh.sidecar.tracing.tags import key_attribute
from tests.unit.trace_store_helpers import rows, tracer_of

SERVER, CLIENT, INTERNAL = SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL
CLAIM, EMPLOYEE = key_attribute("claim"), key_attribute("employee")


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

    def test_fill_counts_the_spans_held_against_the_bound(self, path):
        """fill() is (spans held, max_spans): growing, then at the bound once eviction
        starts; None once the exporter is shut down."""
        exporter = TraceStoreExporter(path, max_spans=10)
        providers: list[TracerProvider] = []
        tracer = tracer_of(exporter, "hr", providers)
        assert exporter.fill() == (0, 10)
        for _ in range(3):
            tracer.start_span("call", kind=SERVER).end()
        providers[0].force_flush()
        assert exporter.fill() == (3, 10)
        for _ in range(20):
            tracer.start_span("call", kind=SERVER).end()
        providers[0].force_flush()
        assert exporter.fill() == (10, 10)
        providers[0].shutdown()
        exporter.shutdown()
        assert exporter.fill() is None

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

    def test_recent_traces_are_those_begun_in_the_window_latest_first(self, tracers, store):
        """recent_traces lists the traces that began since the window's start, the latest
        first, each named by its first span, with its duration, size and failure, at most
        `limit` of them."""
        tracer = tracers("hr")
        tracer.start_span("before the window", kind=SERVER, start_time=100).end(end_time=200)
        first = tracer.start_span("GetEmployee", kind=SERVER, start_time=1_000)
        inner = tracer.start_span(
            "lookup", kind=INTERNAL, start_time=1_100, context=trace.set_span_in_context(first)
        )
        inner.set_status(Status(StatusCode.ERROR))
        inner.end(end_time=1_200)
        first.end(end_time=1_500)
        tracer.start_span("ListEmployees", kind=SERVER, start_time=2_000).end(end_time=2_100)

        found = store.recent_traces(since_ns=1_000, limit=10)
        assert [(t.name, t.service, t.duration_ns, t.spans, t.failed) for t in found] == [
            ("ListEmployees", "hr", 100, 1, False),
            ("GetEmployee", "hr", 500, 2, True),
        ]
        assert found[1].trace_id == format(first.get_span_context().trace_id, "032x")
        assert [t.name for t in store.recent_traces(since_ns=0, limit=1)] == ["ListEmployees"]

    def test_server_spans_of_a_window_latest_first(self, tracers, store):
        """server_spans returns only server spans that began since the window's start, the
        latest first."""
        tracer = tracers("finance")
        tracer.start_span("old", kind=SERVER, start_time=100).end(end_time=200)
        tracer.start_span("Payout", kind=SERVER, start_time=1_000).end(end_time=1_100)
        tracer.start_span("to hr", kind=CLIENT, start_time=1_200).end(end_time=1_300)
        tracer.start_span("GetBudget", kind=SERVER, start_time=1_400).end(end_time=1_500)

        assert [span.name for span in store.server_spans(since_ns=1_000)] == [
            "GetBudget",
            "Payout",
        ]

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
