"""The portal's models and drawings, without a browser or a mesh: percentiles, the call
graph from the ledger's counters and the spans, call order in a waterfall, windows and
the --listen flag."""

from __future__ import annotations

import argparse

import pytest

from deptmesh.metering.v1 import metering_pb2
from deptmesh.services.portal.call_graph import call_graph, percentile
from deptmesh.services.portal.command import listen_address
from deptmesh.services.portal.graph_drawing import draw_call_graph
from deptmesh.services.portal.waterfall import in_call_order
from deptmesh.services.portal.windows import DEFAULT_WINDOW, window_named
from deptmesh.sidecar.tracing.attributes import CALLER_SERVICE
from deptmesh.sidecar.tracing.store import SpanRecord


def span(span_id, parent=None, start=0, end=1_000_000, caller=None, service="hr"):
    attributes = {CALLER_SERVICE: caller} if caller else {}
    return SpanRecord(
        "t", span_id, parent, "m", "server", service, start, end, "OK", "", attributes
    )


class TestPercentile:
    def test_nearest_rank(self):
        """p95 of 1..20 is 19, of 1..100 is 95; of one value, that value."""
        assert percentile(list(range(1, 21)), 0.95) == 19
        assert percentile(list(range(100, 0, -1)), 0.95) == 95
        assert percentile([7.0], 0.95) == 7.0


class TestCallGraph:
    def test_edges_count_calls_failures_and_p95(self):
        """An edge sums its methods' calls and failures (errors, throttled, denied); its p95
        comes from the server spans the callee recorded for that caller."""
        usage = {
            ("reimbursement", "hr", "/a"): metering_pb2.UsageSummary(calls=8, errors=1),
            ("reimbursement", "hr", "/b"): metering_pb2.UsageSummary(calls=2, denied=1),
        }
        spans = [span(str(n), end=n * 1_000_000, caller="reimbursement") for n in range(1, 21)]
        graph = call_graph(usage, spans, 60.0, ["finance"])
        [edge] = graph.edges
        assert (edge.caller, edge.callee, edge.calls, edge.failed) == ("reimbursement", "hr", 10, 2)
        assert edge.error_ratio == 0.2
        assert edge.calls_per_minute == 10
        assert edge.p95_ms == 19.0
        assert graph.nodes == ("finance", "hr", "reimbursement")

    def test_an_edge_without_spans_has_no_p95(self):
        """Counted calls with no span in the window are drawn with p95 n/a."""
        usage = {("a", "b", "/m"): metering_pb2.UsageSummary(calls=3)}
        graph = call_graph(usage, [], 60.0)
        assert graph.edges[0].p95_ms is None
        assert "p95 n/a" in draw_call_graph(graph)

    def test_names_are_escaped_in_the_drawing(self):
        """A department's name is text in the SVG, never markup."""
        usage = {("<b>", "b", "/m"): metering_pb2.UsageSummary(calls=1)}
        drawing = draw_call_graph(call_graph(usage, [], 60.0))
        assert "<b>" not in drawing
        assert "&lt;b&gt;" in drawing


class TestWaterfallOrder:
    def test_children_follow_their_parent(self):
        """Each span comes after its parent, one level deeper; siblings by start time; a span
        whose parent is not stored starts a tree of its own."""
        spans = [
            span("root", start=0),
            span("late", "root", start=5),
            span("early", "root", start=1),
            span("grandchild", "early", start=2),
            span("orphan", "missing", start=3),
        ]
        order = [(depth, s.span_id) for depth, s in in_call_order(spans)]
        assert order == [(0, "root"), (1, "early"), (2, "grandchild"), (1, "late"), (0, "orphan")]


class TestFlags:
    def test_windows_by_name(self):
        """A window is one of the named ones; none named is the default; others are refused."""
        assert window_named(None) == DEFAULT_WINDOW
        assert window_named("10m").seconds == 600
        with pytest.raises(ValueError, match="not one of"):
            window_named("2y")

    def test_listen_takes_port_zero_and_ipv6(self):
        """--listen takes HOST:0 (any free port) and a bracketed IPv6 host."""
        assert listen_address("127.0.0.1:0") == ("127.0.0.1", 0)
        assert listen_address("[::1]:8080") == ("::1", 8080)
        with pytest.raises(argparse.ArgumentTypeError):
            listen_address("localhost")
