"""What `deptmesh trace` prints: one trace as a waterfall, for on-call.

A summary line (trace id, spans, services, duration, start time in UTC), then
one row per span: SERVICE (indented under its parent span), METHOD (rpc.service
/rpc.method, else the span name), KIND, STATUS (the gRPC status code name),
START MS (from the trace's start), DUR MS, a TIMELINE bar of `bar_width` cells
placed by start and scaled by duration, and PEER (a server span's verified
caller, a client span's callee: service and SPIFFE ID). Denials and throttles
recorded as span events are printed under their span with the reason:

    ! denied: NO_INTENTION  (+1.50 ms)

A span whose parent is not in the trace is a root. Every string from the store
is shown with its control characters escaped, so a span cannot drive the
terminal. Rendering is a pure function of the spans (and the width).

Given a `width` (the terminal's columns, as `deptmesh trace` passes it) the
view is fitted to it: a peer by its service name alone (its SPIFFE ID's last
segment when no name was recorded), a method without its proto package, the
timeline narrower, and, if that is not enough, methods and peers cut with an
ellipsis. Without one (`deptmesh trace --wide`) everything is shown in full.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc

from deptmesh.sidecar.cli.tables import shorten, table
from deptmesh.sidecar.logs import printable
from deptmesh.sidecar.tracing.attributes import (
    CALLEE_SERVICE,
    CALLEE_SPIFFE_ID,
    CALLER_SERVICE,
    CALLER_SPIFFE_ID,
    DENIED_EVENT,
    REASON,
    THROTTLED_EVENT,
)
from deptmesh.sidecar.tracing.store import SpanRecord

__all__ = ["BAR_WIDTH", "MIN_BAR_WIDTH", "render_trace"]

BAR_WIDTH = 40
# The narrowest timeline a fitted view keeps before it cuts methods and peers.
MIN_BAR_WIDTH = 10
# What a fitted view cuts methods and peers to: first, then when even that is too wide.
_METHOD_CUTS = (28, 18)
_PEER_CUTS = (16, 10)

Row = tuple[str, ...]

# PEER (SPIFFE IDs are long) comes last, so the timeline stays in view.
_HEADER: Row = ("SERVICE", "METHOD", "KIND", "STATUS", "START MS", "DUR MS", "TIMELINE", "PEER")
_NUMERIC_COLUMNS = ("START MS", "DUR MS")
_INDENT = "  "
_STATUS_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
_EVENT_LABELS = {DENIED_EVENT: "denied", THROTTLED_EVENT: "throttled"}


@dataclass(frozen=True, slots=True)
class _Layout:
    """How a fitted view shows the columns: the timeline's width (None: no timeline),
    what methods and peers are cut to (None: in full), and whether KIND is shown."""

    bar: int | None
    method: int | None = None
    peer: int | None = None
    kind: bool = True


def render_trace(
    spans: Sequence[SpanRecord], *, bar_width: int = BAR_WIDTH, width: int | None = None
) -> str:
    """The spans of one trace as a header line, a waterfall table and event notes;
    fitted to `width` columns when given (see the module's docstring)."""
    if not spans:
        raise ValueError("a trace to render needs at least one span")
    if bar_width < 1:
        raise ValueError(f"bar_width must be at least 1, got {bar_width}")
    origin = min(span.start_ns for span in spans)
    total = max(span.end_ns for span in spans) - origin
    ordered = _tree_order(spans)
    fitted = width is not None
    cells = [
        (
            _INDENT * depth + printable(span.service),
            printable(_method(span, short=fitted)),
            printable(span.kind),
            printable(_status(span)),
            _ms(span.start_ns - origin),
            _ms(span.end_ns - span.start_ns),
            printable(_peer(span, short=fitted)),
        )
        for depth, span in ordered
    ]
    layout = _Layout(bar_width) if width is None else _fit(cells, width, bar_width)
    rows: list[Row] = [_header(layout)]
    notes: list[list[str]] = []
    for (depth, span), cell in zip(ordered, cells, strict=True):
        timeline = None
        if layout.bar is not None:
            timeline = _bar(span.start_ns - origin, span.end_ns - origin, total, layout.bar)
        rows.append(_row(cell, layout, timeline))
        notes.append(_event_notes(span, origin, _INDENT * (depth + 2)))
    numeric = [i for i, name in enumerate(rows[0]) if name in _NUMERIC_COLUMNS]
    header, *lines = table(_right_aligned(rows, numeric)).split("\n")
    out = [*_summary(spans, origin, total, width), header]
    for line, note in zip(lines, notes, strict=True):
        out.append(line)
        out.extend(note)
    return "\n".join(out)


def _header(layout: _Layout) -> Row:
    return tuple(
        name
        for name in _HEADER
        if (name != "KIND" or layout.kind) and (name != "TIMELINE" or layout.bar is not None)
    )


def _row(cell: Row, layout: _Layout, timeline: str | None) -> Row:
    service, method, kind, status, start, took, peer = cell
    if layout.method is not None:
        method = _cut_method(method, layout.method)
    if layout.peer is not None:
        peer = shorten(peer, layout.peer)
    row = [service, method, *([kind] if layout.kind else []), status, start, took]
    if timeline is not None:
        row.append(f"|{timeline}|")
    return (*row, peer)


def _cut_method(method: str, width: int) -> str:
    """`Service/Method` cut to `width`, the service's name first: the method is the point."""
    service, slash, name = method.rpartition("/")
    if len(method) <= width or not slash or len(name) + 2 > width:
        return shorten(method, width)
    return f"{shorten(service, width - len(name) - 1)}/{name}"


def _fit(cells: Sequence[Row], width: int, bar_width: int) -> _Layout:
    """The first layout whose lines fit `width` columns, giving way in this order: the
    timeline narrows (down to MIN_BAR_WIDTH), methods and peers are cut, KIND goes (a
    peer's "to"/"from" says it), the timeline goes (START and DUR remain), and methods
    and peers are cut further. A terminal narrower than the last of these wraps."""
    steps = [
        _Layout(None),  # only measures what the timeline leaves
        _Layout(None, method=_METHOD_CUTS[0], peer=_PEER_CUTS[0]),
        _Layout(None, method=_METHOD_CUTS[0], peer=_PEER_CUTS[0], kind=False),
    ]
    for step in steps:
        bar = min(bar_width, width - _width(cells, step) - len("  ||"))
        if bar >= MIN_BAR_WIDTH:
            return _Layout(bar, step.method, step.peer, step.kind)
    last = _Layout(None, method=_METHOD_CUTS[1], peer=_PEER_CUTS[1], kind=False)
    dropped = _Layout(None, method=_METHOD_CUTS[0], peer=_PEER_CUTS[0], kind=False)
    return dropped if _width(cells, dropped) <= width else last


def _width(cells: Sequence[Row], layout: _Layout) -> int:
    """How wide the table's lines are without the timeline."""
    rows = [_row(cell, layout, None) for cell in cells]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(_header(layout))]
    return sum(widths) + 2 * (len(widths) - 1)


def _tree_order(spans: Sequence[SpanRecord]) -> list[tuple[int, SpanRecord]]:
    """Depth-first, siblings by start time; spans with no parent in the trace are roots."""
    span_ids = {span.span_id for span in spans}
    children: dict[str, list[SpanRecord]] = defaultdict(list)
    for span in spans:
        if span.parent_span_id is not None and _has_parent_in(span, span_ids):
            children[span.parent_span_id].append(span)
    roots = [span for span in spans if not _has_parent_in(span, span_ids)]
    ordered: list[tuple[int, SpanRecord]] = []
    shown: set[int] = set()
    pending = sorted(spans, key=_start_order)
    while True:
        stack = [(0, root) for root in sorted(roots, key=_start_order, reverse=True)]
        while stack:
            depth, span = stack.pop()
            if id(span) in shown:
                continue
            shown.add(id(span))
            ordered.append((depth, span))
            siblings = sorted(children[span.span_id], key=_start_order, reverse=True)
            stack.extend((depth + 1, child) for child in siblings)
        # Spans whose parent links form a cycle never hang under a root: the earliest
        # of what is left becomes one, so every span is shown exactly once.
        pending = [span for span in pending if id(span) not in shown]
        if not pending:
            return ordered
        roots = pending[:1]


def _has_parent_in(span: SpanRecord, span_ids: set[str]) -> bool:
    parent = span.parent_span_id
    return parent is not None and parent in span_ids and parent != span.span_id


def _start_order(span: SpanRecord) -> tuple[int, str]:
    return (span.start_ns, span.span_id)


def _method(span: SpanRecord, *, short: bool) -> str:
    service = span.attributes.get("rpc.service")
    method = span.attributes.get("rpc.method")
    if isinstance(service, str) and isinstance(method, str):
        # deptmesh.hr.v1.EmployeeService -> EmployeeService: the package is in the contract.
        return f"{service.rpartition('.')[2] if short else service}/{method}"
    return span.name


def _peer(span: SpanRecord, *, short: bool) -> str:
    attributes = span.attributes
    if span.kind == "server":
        who = _identity(attributes, CALLER_SERVICE, CALLER_SPIFFE_ID, short) or _address(
            attributes, "network.peer.address", "network.peer.port"
        )
        return f"from {who}" if who else "-"
    if span.kind == "client":
        who = _identity(attributes, CALLEE_SERVICE, CALLEE_SPIFFE_ID, short) or _address(
            attributes, "server.address", "server.port"
        )
        return f"to {who}" if who else "-"
    return "-"


def _identity(attributes: Mapping[str, Any], service_key: str, spiffe_key: str, short: bool) -> str:
    service = attributes.get(service_key)
    spiffe_id = attributes.get(spiffe_key)
    if short:
        # A SPIFFE ID's last segment is the service it names (.../svc/hr).
        return str(service or (str(spiffe_id).rpartition("/")[2] if spiffe_id else ""))
    if service and spiffe_id:
        return f"{service} ({spiffe_id})"
    return str(service or spiffe_id or "")


def _address(attributes: Mapping[str, Any], host_key: str, port_key: str) -> str:
    host = attributes.get(host_key)
    port = attributes.get(port_key)
    if not host:
        return ""
    return f"{host}:{port}" if port is not None else str(host)


def _status(span: SpanRecord) -> str:
    code = span.attributes.get("rpc.grpc.status_code")
    if isinstance(code, int) and not isinstance(code, bool):
        return _STATUS_NAMES.get(code, str(code))
    return span.status if span.status in ("OK", "ERROR") else "-"


def _event_notes(span: SpanRecord, origin: int, indent: str) -> list[str]:
    notes = []
    for event in span.events:
        label = _EVENT_LABELS.get(event.name)
        if label is None:
            continue
        reason = event.attributes.get(REASON) or "(no reason recorded)"
        offset = _ms(event.time_ns - origin)
        notes.append(f"{indent}! {label}: {printable(str(reason))}  (+{offset} ms)")
    return notes


def _summary(spans: Sequence[SpanRecord], origin: int, total: int, width: int | None) -> list[str]:
    """The summary, on two lines when one would not fit `width`."""
    services = len({span.service for span in spans})
    started = datetime.fromtimestamp(origin // 1_000_000_000, UTC) + timedelta(
        microseconds=origin % 1_000_000_000 // 1000
    )
    what = f"trace {printable(spans[0].trace_id)}"
    rest = (
        f"{len(spans)} spans  {services} services  {_ms(total)} ms"
        f"  started {started.isoformat(timespec='milliseconds')}"
    )
    line = f"{what}  {rest}"
    return [line] if width is None or len(line) <= width else [what, rest]


def _bar(start: int, end: int, total: int, width: int) -> str:
    """Start and end (ns from the trace's start) as a run of blocks over width cells."""
    if total <= 0:
        return "█" * width
    first = min(start * width // total, width - 1)
    last = max(first + 1, min(width, -(-end * width // total)))
    return (" " * first + "█" * (last - first)).ljust(width)


def _ms(nanoseconds: int) -> str:
    return f"{nanoseconds / 1_000_000:.2f}"


def _right_aligned(rows: list[Row], columns: Sequence[int]) -> list[Row]:
    widths = {column: max(len(row[column]) for row in rows) for column in columns}
    return [
        tuple(cell.rjust(widths[i]) if i in widths else cell for i, cell in enumerate(row))
        for row in rows
    ]
