"""One trace as a waterfall drawn in SVG: a row per span in call order (children under
their parent, indented), its bar where it ran within the trace, red when it failed."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from markupsafe import Markup

from deptmesh.sidecar.tracing.store import SpanRecord

__all__ = ["draw_waterfall", "in_call_order"]

_WIDTH, _ROW, _LABEL = 960, 26, 420


def in_call_order(spans: Sequence[SpanRecord]) -> list[tuple[int, SpanRecord]]:
    """(depth, span) in call order: each span after its parent, siblings by start time;
    a span whose parent is not stored starts a tree of its own."""
    ids = {span.span_id for span in spans}
    children: dict[str | None, list[SpanRecord]] = {}
    for span in sorted(spans, key=lambda s: (s.start_ns, s.span_id)):
        parent = span.parent_span_id if span.parent_span_id in ids else None
        children.setdefault(parent, []).append(span)
    ordered: list[tuple[int, SpanRecord]] = []
    stack = [(0, span) for span in reversed(children.get(None, []))]
    while stack:
        depth, span = stack.pop()
        ordered.append((depth, span))
        stack.extend((depth + 1, child) for child in reversed(children.get(span.span_id, [])))
    return ordered


def draw_waterfall(spans: Sequence[SpanRecord]) -> Markup:
    """The waterfall of one trace's spans (not empty)."""
    origin = min(span.start_ns for span in spans)
    total = max(1, max(span.end_ns for span in spans) - origin)
    plot = _WIDTH - _LABEL - 80
    rows = []
    for index, (depth, span) in enumerate(in_call_order(spans)):
        y = 8 + index * _ROW
        x = _LABEL + plot * (span.start_ns - origin) / total
        width = max(2.0, plot * (span.end_ns - span.start_ns) / total)
        state = "failed" if span.status == "ERROR" else "ok"
        label = escape(f"{span.service} · {span.name.rsplit('.', 1)[-1]}")
        duration = (span.end_ns - span.start_ns) / 1e6
        tip = escape(f"{span.name} ({span.service}, {span.kind}): {duration:.2f} ms {span.status}")
        rows.append(
            f'<g class="span {state}"><title>{tip}</title>'
            f'<text x="{4 + depth * 14}" y="{y + 16}">{label}</text>'
            f'<rect x="{x:.1f}" y="{y + 3}" width="{width:.1f}" height="16" rx="2"/>'
            f'<text class="duration" x="{x + width + 4:.1f}" y="{y + 16}">{duration:.1f} ms</text>'
            "</g>"
        )
    height = 16 + _ROW * len(rows)
    return Markup(  # noqa: S704 -- every text in it went through escape() above
        f'<svg class="waterfall" viewBox="0 0 {_WIDTH} {height}" role="img"'
        ' xmlns="http://www.w3.org/2000/svg"><title>Trace waterfall</title>'
        f"{''.join(rows)}</svg>"
    )
