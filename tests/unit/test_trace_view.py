"""The waterfall `deptmesh trace` prints, and the command itself."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

from deptmesh.sidecar.cli import trace_view
from deptmesh.sidecar.cli.command import main
from deptmesh.sidecar.cli.trace_view import BAR_WIDTH, render_trace
from deptmesh.sidecar.tracing.attributes import (
    CALLEE_SERVICE,
    CALLEE_SPIFFE_ID,
    CALLER_SERVICE,
    CALLER_SPIFFE_ID,
    DENIED_EVENT,
    REASON,
    THROTTLED_EVENT,
)
from deptmesh.sidecar.tracing.store import SpanEvent, SpanRecord, TraceStoreExporter
from deptmesh.sidecar.tracing.tags import key_attribute

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLAIM, COST_CENTER = key_attribute("claim"), key_attribute("cost_center")
MS = 1_000_000
T0 = 1_736_155_800 * 1_000_000_000  # 2025-01-06T09:30:00Z


def spiffe(service):
    return f"spiffe://corp.example/ns/default/dc/dc1/svc/{service}"


def rpc(service, method, code):
    return {"rpc.service": service, "rpc.method": method, "rpc.grpc.status_code": code}


def span(span_id, parent, kind, service, start_ms, end_ms, attributes=None, events=()):
    return SpanRecord(
        trace_id=TRACE,
        span_id=span_id * 16,
        parent_span_id=None if parent is None else parent * 16,
        name="span-" + span_id,
        kind=kind,
        service=service,
        start_ns=T0 + int(start_ms * MS),
        end_ns=T0 + int(end_ms * MS),
        attributes=attributes or {},
        events=tuple(events),
    )


HR = "deptmesh.hr.v1.EmployeeService"
FINANCE = "deptmesh.finance.v1.PaymentService"
# reimbursement approves a claim: asks hr for the manager chain, then finance refuses the payout.
CLAIM_TRACE = [
    span(
        "a",
        None,
        "server",
        "reimbursement",
        0,
        20,
        {
            **rpc("deptmesh.reimbursement.v1.ReimbursementService", "ApproveClaim", 0),
            CALLER_SERVICE: "web",
            CALLER_SPIFFE_ID: spiffe("web"),
        },
    ),
    span(
        "b",
        "a",
        "client",
        "reimbursement",
        1,
        5,
        {**rpc(HR, "GetManagerChain", 0), CALLEE_SERVICE: "hr", CALLEE_SPIFFE_ID: spiffe("hr")},
    ),
    span(
        "c",
        "b",
        "server",
        "hr",
        2,
        4,
        {
            **rpc(HR, "GetManagerChain", 0),
            CALLER_SERVICE: "reimbursement",
            CALLER_SPIFFE_ID: spiffe("reimbursement"),
        },
    ),
    span(
        "d",
        "a",
        "client",
        "reimbursement",
        6,
        10,
        {
            **rpc(FINANCE, "Payout", 7),
            CALLEE_SERVICE: "finance",
            CALLEE_SPIFFE_ID: spiffe("finance"),
        },
        [SpanEvent(DENIED_EVENT, T0 + 9 * MS, {REASON: "ACCESS_DENIED"})],
    ),
]

EXPECTED = """\
trace 4bf92f3577b34da6a3ce929d0e0e4736  4 spans  2 services  20.00 ms  started 2025-01-06T09:30:00.000+00:00
SERVICE          METHOD                                                       KIND    STATUS             START MS  DUR MS  TIMELINE      PEER
reimbursement    deptmesh.reimbursement.v1.ReimbursementService/ApproveClaim  server  OK                     0.00   20.00  |██████████|  from web (spiffe://corp.example/ns/default/dc/dc1/svc/web)
  reimbursement  deptmesh.hr.v1.EmployeeService/GetManagerChain               client  OK                     1.00    4.00  |███       |  to hr (spiffe://corp.example/ns/default/dc/dc1/svc/hr)
    hr           deptmesh.hr.v1.EmployeeService/GetManagerChain               server  OK                     2.00    2.00  | █        |  from reimbursement (spiffe://corp.example/ns/default/dc/dc1/svc/reimbursement)
  reimbursement  deptmesh.finance.v1.PaymentService/Payout                    client  PERMISSION_DENIED      6.00    4.00  |   ██     |  to finance (spiffe://corp.example/ns/default/dc/dc1/svc/finance)
      ! denied: ACCESS_DENIED  (+9.00 ms)"""  # noqa: E501 -- the waterfall is wider than code


def rows_of(text):
    """(indented service, method, kind) of each span row, in printed order."""
    return [tuple(line.split()[:3]) for line in text.splitlines()[2:] if line.lstrip()[:1] != "!"]


class TestRenderTrace:
    def test_a_three_service_trace(self):
        """The claim trace prints as a tree with identities, statuses, offsets,
        durations, bars and the denial reason under the refused call."""
        assert render_trace(CLAIM_TRACE, bar_width=10) == EXPECTED

    def test_the_order_of_the_input_does_not_matter(self):
        """The same spans in any order render the same text."""
        assert render_trace(CLAIM_TRACE[::-1], bar_width=10) == EXPECTED

    def test_children_follow_their_parent_by_start_time(self):
        """Depth first: a span's children come right after it, earliest first."""
        spans = [
            span("r", None, "server", "a", 0, 10),
            span("y", "r", "client", "a", 5, 6),
            span("x", "r", "client", "a", 1, 2),
            span("z", "x", "server", "b", 1.5, 1.8),
        ]
        lines = render_trace(spans).splitlines()[2:]
        assert [line.split()[0] for line in lines] == ["a", "a", "b", "a"]
        assert [len(line) - len(line.lstrip()) for line in lines] == [0, 2, 4, 2]
        assert "span-z" in lines[2]

    def test_a_span_whose_parent_is_missing_is_a_root(self):
        """A server span called from a host whose spans are not here starts a tree."""
        spans = [
            span("h", "f", "server", "hr", 3, 4),  # its parent span is not in the store
            span("r", None, "server", "reimbursement", 0, 2),
        ]
        lines = render_trace(spans).splitlines()[2:]
        assert [line[:2] for line in lines] == ["re", "hr"]

    def test_parent_cycles_still_show_every_span_once(self):
        """Spans whose parent links loop are shown, each once, rather than lost."""
        spans = [span("a", "b", "internal", "x", 0, 1), span("b", "a", "internal", "x", 1, 2)]
        assert [method for (_, method, _) in rows_of(render_trace(spans))] == ["span-a", "span-b"]

    def test_a_throttle_is_printed_with_its_reason(self):
        """A throttled server span shows RESOURCE_EXHAUSTED and why."""
        throttled = span(
            "f",
            None,
            "server",
            "finance",
            0,
            1,
            {**rpc(FINANCE, "Payout", 8), CALLER_SERVICE: "payroll"},
            [SpanEvent(THROTTLED_EVENT, T0, {REASON: "QUOTA_EXCEEDED"})],
        )
        text = render_trace([throttled])
        assert "RESOURCE_EXHAUSTED" in text
        assert "from payroll" in text
        assert text.endswith("    ! throttled: QUOTA_EXCEEDED  (+0.00 ms)")

    def test_other_events_are_not_printed(self):
        """Only denials and throttles get a line of their own."""
        other = span("a", None, "server", "hr", 0, 1, events=[SpanEvent("message", T0, {})])
        assert len(render_trace([other]).splitlines()) == 3

    @pytest.mark.parametrize(
        ("kind", "attributes", "status", "peer"),
        [
            ("server", {"network.peer.address": "10.0.0.7", "network.peer.port": 5}, "-",
             "from 10.0.0.7:5"),
            ("client", {"server.address": "hr.local", "server.port": 443}, "-", "to hr.local:443"),
            ("client", {CALLEE_SPIFFE_ID: spiffe("hr")}, "-", "to " + spiffe("hr")),
            ("internal", {"rpc.grpc.status_code": 99}, "99", "-"),
            ("server", {}, "-", "-"),
        ],
    )  # fmt: skip
    def test_fallbacks_for_missing_attributes(self, kind, attributes, status, peer):
        """Without verified identities the peer's address is shown; unknown codes as numbers."""
        line = render_trace([span("a", None, kind, "hr", 0, 1, attributes)]).splitlines()[2]
        assert line.split()[3] == status
        assert line.endswith("|  " + peer)

    def test_the_span_status_stands_in_for_a_missing_grpc_code(self):
        """A span with no rpc.grpc.status_code shows its OpenTelemetry status."""
        failed = SpanRecord(TRACE, "a" * 16, None, "job", "internal", "hr", T0, T0 + 1, "ERROR")
        assert render_trace([failed]).splitlines()[2].split()[3] == "ERROR"

    def test_control_characters_are_escaped(self):
        """A value carrying terminal escapes or newlines is printed escaped, on one line."""
        hostile = span(
            "a",
            None,
            "server",
            "hr\x1b[2J",
            0,
            1,
            {CALLER_SERVICE: "evil\nforged line"},
            [SpanEvent(DENIED_EVENT, T0, {REASON: "\x9b31m"})],
        )
        text = render_trace([hostile])
        assert "\x1b" not in text
        assert "\x9b" not in text
        assert "hr\\x1b[2J" in text
        assert "evil\\x0aforged line" in text
        assert "! denied: \\x9b31m" in text
        assert len(text.splitlines()) == 4

    def test_a_trace_with_no_duration_fills_the_bar(self):
        """When every span is instantaneous the bars span the whole width."""
        line = render_trace([span("a", None, "server", "hr", 0, 0)], bar_width=4).splitlines()[2]
        assert "|████|" in line

    def test_bars_are_at_least_one_cell(self):
        """A very short span still gets one cell where it started."""
        spans = [span("a", None, "server", "hr", 0, 100), span("b", "a", "client", "hr", 50, 50.01)]
        assert "|     █    |" in render_trace(spans, bar_width=10).splitlines()[3]

    @pytest.mark.parametrize(("spans", "width"), [([], 40), (CLAIM_TRACE, 0)])
    def test_nothing_to_render_is_an_error(self, spans, width):
        """An empty trace or a bar of no cells is refused with ValueError."""
        with pytest.raises(ValueError, match="at least"):
            render_trace(spans, bar_width=width)

    @pytest.mark.parametrize("width", [200, 120, 100])
    def test_a_fitted_view_fits_its_width(self, width):
        """Given the terminal's width, no line is wider; peers are service names and
        methods keep their own name, whatever of the service's is cut."""
        text = render_trace(CLAIM_TRACE, width=width)
        assert max(map(len, text.splitlines())) <= width
        assert "spiffe://" not in text
        assert "deptmesh.hr.v1" not in text
        for method in ("ApproveClaim", "GetManagerChain", "Payout"):
            assert f"/{method}  " in text
        assert "to finance" in text

    def test_a_wide_terminal_shows_the_timeline_and_kind(self):
        """At 160 columns the claim trace keeps every column and a full timeline."""
        lines = render_trace(CLAIM_TRACE, width=160).splitlines()
        assert lines[1].split() == [
            "SERVICE", "METHOD", "KIND", "STATUS", "START", "MS", "DUR", "MS", "TIMELINE", "PEER"
        ]  # fmt: skip
        assert "|" + "█" * BAR_WIDTH + "|" in lines[2]
        assert lines[2].endswith("from web")

    def test_a_narrow_terminal_drops_the_timeline_before_the_names(self):
        """Below what the timeline needs, KIND and TIMELINE go; START and DUR stay, and
        the summary is split onto two lines."""
        lines = render_trace(CLAIM_TRACE, width=90).splitlines()
        assert lines[0] == f"trace {TRACE}"
        assert lines[2].split() == [
            "SERVICE",
            "METHOD",
            "STATUS",
            "START",
            "MS",
            "DUR",
            "MS",
            "PEER",
        ]
        assert "|" not in "\n".join(lines)

    def test_a_long_method_is_cut_from_its_service_name(self):
        """A method too long for the column keeps its own name; the service's is cut."""
        long = span("a", None, "server", "hr", 0, 1, rpc("x." + "Very" * 20 + "Service", "Get", 0))
        row = render_trace([long], width=80).splitlines()[3]
        method = row.split()[1]
        assert method.startswith("VeryVery")
        assert method.endswith("…/Get")

    def test_exported_members(self):
        """The module exports render_trace and its bar widths."""
        assert trace_view.__all__ == ["BAR_WIDTH", "MIN_BAR_WIDTH", "render_trace"]


@pytest.fixture
def store_path(tmp_path):
    """A trace store holding one claim trace recorded by three services through the SDK."""
    path = tmp_path / "traces.sqlite"
    exporter = TraceStoreExporter(path)
    providers = {}
    for service in ("reimbursement", "hr", "finance"):
        provider = TracerProvider(
            resource=Resource.create({"service.name": service}), shutdown_on_exit=False
        )
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        providers[service] = provider.get_tracer("tests")
    reimbursement, hr, finance = providers.values()
    with reimbursement.start_as_current_span(
        "ApproveClaim",
        kind=SpanKind.SERVER,
        attributes={CALLER_SERVICE: "web", CLAIM: "clm_7"},
    ):
        with reimbursement.start_as_current_span(
            "GetManagerChain", kind=SpanKind.CLIENT, attributes={CALLEE_SERVICE: "hr"}
        ):
            hr.start_span(
                "GetManagerChain",
                kind=SpanKind.SERVER,
                attributes={CALLER_SERVICE: "reimbursement", "rpc.grpc.status_code": 0},
            ).end()
        with reimbursement.start_as_current_span(
            "Payout",
            kind=SpanKind.CLIENT,
            attributes={CALLEE_SERVICE: "finance", "rpc.grpc.status_code": 7},
        ):
            denied = finance.start_span(
                "Payout",
                kind=SpanKind.SERVER,
                attributes={
                    CALLER_SERVICE: "reimbursement",
                    "rpc.grpc.status_code": 7,
                    COST_CENTER: "CC-ENG",
                },
            )
            denied.add_event(DENIED_EVENT, {REASON: "ACCESS_DENIED"})
            denied.end()
    # A later trace about another claim, so --last and --claim have a choice to make.
    other = hr.start_span("GetEmployee", kind=SpanKind.SERVER, attributes={CLAIM: "clm_8"})
    other.end()
    exporter.shutdown()
    return path


class TestTraceCommand:
    def test_the_view_fits_the_terminal_unless_wide(self, store_path, capsys, monkeypatch):
        """Without --wide the waterfall fits the terminal's columns ($COLUMNS when it is
        not a terminal); with it, lines are as long as their content."""
        monkeypatch.setenv("COLUMNS", "100")
        assert main(["trace", "--claim", "clm_7", "--store", str(store_path)]) == 0
        fitted = capsys.readouterr().out
        assert max(map(len, fitted.splitlines())) <= 100
        assert main(["trace", "--claim", "clm_7", "--wide", "--store", str(store_path)]) == 0
        assert max(map(len, capsys.readouterr().out.splitlines())) > 100

    def test_last_prints_the_latest_trace(self, store_path, capsys):
        """`deptmesh trace --last` prints the waterfall of the trace that started last."""
        assert main(["trace", "--last", "--store", str(store_path)]) == 0
        out = capsys.readouterr().out
        assert "1 spans  1 services" in out
        assert "GetEmployee" in out

    def test_a_claim_prints_its_trace(self, store_path, capsys):
        """`deptmesh trace --claim` prints every hop of the claim's trace in tree order."""
        assert main(["trace", "--claim", "clm_7", "--wide", "--store", str(store_path)]) == 0
        out = capsys.readouterr().out
        assert rows_of(out) == [
            ("reimbursement", "ApproveClaim", "server"),
            ("reimbursement", "GetManagerChain", "client"),
            ("hr", "GetManagerChain", "server"),
            ("reimbursement", "Payout", "client"),
            ("finance", "Payout", "server"),
        ]
        assert "PERMISSION_DENIED" in out
        assert "! denied: ACCESS_DENIED" in out

    def test_a_tag_of_any_key_prints_the_traces_about_it(self, store_path, capsys):
        """`deptmesh trace --tag NAME=VALUE` finds traces by any business key: finance's
        cost centre finds the claim's trace, as the claim's id does."""
        assert main(["trace", "--tag", "cost_center=CC-ENG", "--store", str(store_path)]) == 0
        by_cost_center = capsys.readouterr().out
        assert main(["trace", "--tag", "claim=clm_7", "--store", str(store_path)]) == 0
        assert capsys.readouterr().out == by_cost_center
        assert by_cost_center.startswith("trace ")
        assert "5 spans  3 services" in by_cost_center

    def test_claim_is_short_for_the_claim_tag(self, store_path, capsys):
        """`--claim ID` prints exactly what `--tag claim=ID` prints."""
        assert main(["trace", "--claim", "clm_8", "--store", str(store_path)]) == 0
        shortcut = capsys.readouterr().out
        assert main(["trace", "--tag", "claim=clm_8", "--store", str(store_path)]) == 0
        assert capsys.readouterr().out == shortcut
        assert "GetEmployee" in shortcut

    def test_a_value_may_hold_an_equals_sign(self, store_path, capsys):
        """Only the first `=` of --tag separates the name from the value."""
        exporter = TraceStoreExporter(store_path)
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        provider.get_tracer("tests").start_span(
            "query", kind=SpanKind.SERVER, attributes={key_attribute("filter"): "a=b"}
        ).end()
        provider.shutdown()
        assert main(["trace", "--tag", "filter=a=b", "--store", str(store_path)]) == 0
        assert "query" in capsys.readouterr().out

    @pytest.mark.parametrize(
        "arguments",
        [
            ["--tag", "claim"],
            ["--tag", "=clm_7"],
            ["--tag", "claim="],
            ["--tag", "bad name=1"],
            ["--tag", ""],
            ["--claim", ""],
        ],
    )
    def test_a_malformed_tag_is_a_one_line_error(self, store_path, capsys, arguments):
        """A --tag that is not NAME=VALUE (or an empty --claim) exits 1 with one line on
        stderr saying what was expected and what was given."""
        assert main(["trace", *arguments, "--store", str(store_path)]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        tag = arguments[1] if arguments[0] == "--tag" else f"claim={arguments[1]}"
        assert captured.err == (
            "deptmesh trace: --tag takes NAME=VALUE (a key name of letters, digits, _ . -"
            f" and a value), got {tag!r}\n"
        )

    def test_a_trace_id_prints_that_trace(self, store_path, capsys):
        """`deptmesh trace <trace_id>` prints the trace with that id, in any letter case."""
        main(["trace", "--claim", "clm_8", "--store", str(store_path)])
        trace_id = capsys.readouterr().out.split()[1]
        assert main(["trace", trace_id.upper(), "--store", str(store_path)]) == 0
        assert f"trace {trace_id}" in capsys.readouterr().out

    def test_several_traces_of_one_claim_are_all_printed(self, store_path, capsys):
        """A claim seen in two traces prints both waterfalls."""
        exporter = TraceStoreExporter(store_path)
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        provider.get_tracer("tests").start_span(
            "retry", kind=SpanKind.CLIENT, attributes={CLAIM: "clm_7"}
        ).end()
        provider.shutdown()
        assert main(["trace", "--claim", "clm_7", "--store", str(store_path)]) == 0
        out = capsys.readouterr().out
        assert out.startswith("trace ")
        assert out.count("\n\ntrace ") == 1

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            (["0123456789abcdef0123456789abcdef"], "no trace 0123456789abcdef0123456789abcdef"),
            (["not-a-trace"], "'not-a-trace' is not a trace id (32 hex digits)"),
            (["--claim", "clm_missing"], "no trace of claim 'clm_missing'"),
            (["--tag", "employee=E9"], "no trace of employee 'E9'"),
        ],
    )
    def test_nothing_found_is_an_error(self, store_path, capsys, arguments, message):
        """An unknown trace or claim exits 1 with a message on stderr and no traceback."""
        assert main(["trace", *arguments, "--store", str(store_path)]) == 1
        captured = capsys.readouterr()
        assert captured.out == ""
        assert captured.err.startswith(f"deptmesh trace: {message}")

    def test_an_empty_store_has_no_last_trace(self, tmp_path, capsys):
        """--last on a store with no spans exits 1."""
        TraceStoreExporter(tmp_path / "t.sqlite").shutdown()
        assert main(["trace", "--last", "--store", str(tmp_path / "t.sqlite")]) == 1
        assert capsys.readouterr().err == f"deptmesh trace: no traces in {tmp_path / 't.sqlite'}\n"

    def test_a_missing_store_is_an_error(self, tmp_path, capsys):
        """A store path with no file exits 1 saying so."""
        assert main(["trace", "--last", "--store", str(tmp_path / "none.sqlite")]) == 1
        assert "no trace store at" in capsys.readouterr().err

    def test_the_store_defaults_to_the_environment(self, store_path, capsys, monkeypatch):
        """Without --store the command reads $DEPTMESH_TRACE_STORE."""
        monkeypatch.setenv("DEPTMESH_TRACE_STORE", str(store_path))
        assert main(["trace", "--claim", "clm_7"]) == 0
        assert "ApproveClaim" in capsys.readouterr().out
