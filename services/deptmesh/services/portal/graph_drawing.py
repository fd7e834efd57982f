"""The call graph drawn as SVG on the server: departments on a circle, one curved arrow
per caller and callee (a pair calling each other gets two, on either side), labelled
with its call rate, error ratio and p95; the colour says how many calls failed."""

from __future__ import annotations

import math
from html import escape

from markupsafe import Markup

from deptmesh.services.portal.call_graph import CallGraph, Edge

__all__ = ["draw_call_graph", "edge_label", "error_class"]

_WIDTH, _HEIGHT = 760, 520
_RADIUS = 190  # of the circle the departments sit on
_NODE_HEIGHT = 30
_ARROW_GAP = 5  # between an arrow's tip and the box it points at
_BEND = 0.18  # an arrow's bend, as a share of its length


def error_class(edge: Edge) -> str:
    """ "ok" under 1% failed, "warn" under 10%, else "bad"."""
    if edge.error_ratio < 0.01:
        return "ok"
    return "warn" if edge.error_ratio < 0.10 else "bad"


def edge_label(edge: Edge) -> str:
    p95 = "p95 n/a" if edge.p95_ms is None else f"p95 {edge.p95_ms:.1f} ms"
    return f"{edge.calls_per_minute:.1f}/min · {edge.error_ratio:.0%} err · {p95}"


def _positions(nodes: tuple[str, ...]) -> dict[str, tuple[float, float]]:
    centre = (_WIDTH / 2, _HEIGHT / 2)
    if len(nodes) == 1:
        return {nodes[0]: centre}
    return {
        name: (
            centre[0] + _RADIUS * math.cos(-math.pi / 2 + 2 * math.pi * index / len(nodes)),
            centre[1] + _RADIUS * math.sin(-math.pi / 2 + 2 * math.pi * index / len(nodes)),
        )
        for index, name in enumerate(nodes)
    }


def _half_width(name: str) -> float:
    return 6 + 3.8 * len(name)


def _to_border(name: str, ux: float, uy: float) -> float:
    """How far from its box's centre a line in direction (ux, uy) leaves the box."""
    across = _half_width(name) / abs(ux) if ux else math.inf
    down = (_NODE_HEIGHT / 2) / abs(uy) if uy else math.inf
    return min(across, down) + _ARROW_GAP


def _edge(edge: Edge, start: tuple[float, float], end: tuple[float, float]) -> str:
    dx, dy = end[0] - start[0], end[1] - start[1]
    length = math.hypot(dx, dy) or 1.0
    ux, uy = dx / length, dy / length
    leave, arrive = _to_border(edge.caller, ux, uy), _to_border(edge.callee, ux, uy)
    a = (start[0] + ux * leave, start[1] + uy * leave)
    b = (end[0] - ux * arrive, end[1] - uy * arrive)
    # Bent to the left of its direction: the reverse edge bends the other way.
    control = ((a[0] + b[0]) / 2 + uy * length * _BEND, (a[1] + b[1]) / 2 - ux * length * _BEND)
    middle = (
        0.25 * a[0] + 0.5 * control[0] + 0.25 * b[0],
        0.25 * a[1] + 0.5 * control[1] + 0.25 * b[1],
    )
    width = 1.5 + min(5.0, math.log1p(edge.calls_per_minute))
    label = escape(edge_label(edge))
    title = escape(f"{edge.caller} → {edge.callee}: {edge.calls} calls, {edge.failed} failed")
    return (
        f'<g class="edge {error_class(edge)}" data-caller="{escape(edge.caller)}"'
        f' data-callee="{escape(edge.callee)}"><title>{title}</title>'
        f'<path d="M{a[0]:.1f},{a[1]:.1f} Q{control[0]:.1f},{control[1]:.1f}'
        f' {b[0]:.1f},{b[1]:.1f}" stroke-width="{width:.1f}" marker-end="url(#arrow)"/>'
        f'<text x="{middle[0]:.1f}" y="{middle[1]:.1f}">{label}</text></g>'
    )


def _node(name: str, at: tuple[float, float]) -> str:
    half = _half_width(name)
    return (
        f'<g class="node" data-department="{escape(name)}">'
        f'<rect x="{at[0] - half:.1f}" y="{at[1] - _NODE_HEIGHT / 2:.1f}" width="{2 * half:.1f}"'
        f' height="{_NODE_HEIGHT}" rx="8"/>'
        f'<text x="{at[0]:.1f}" y="{at[1] + 5:.1f}">{escape(name)}</text></g>'
    )


def draw_call_graph(graph: CallGraph) -> Markup:
    """The graph as an inline <svg> element."""
    at = _positions(graph.nodes)
    edges = "".join(_edge(edge, at[edge.caller], at[edge.callee]) for edge in graph.edges)
    nodes = "".join(_node(name, at[name]) for name in graph.nodes)
    return Markup(  # noqa: S704 -- every text in it went through escape() above
        f'<svg class="call-graph" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img"'
        ' aria-labelledby="graph-title" xmlns="http://www.w3.org/2000/svg">'
        '<title id="graph-title">Department call graph</title>'
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="10"'
        ' markerHeight="10" markerUnits="userSpaceOnUse" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z"/>'
        "</marker></defs>"
        f'<g class="edges">{edges}</g><g class="nodes">{nodes}</g></svg>'
    )
