"""The department call graph over a window: who calls whom, how often, how many calls
failed, and how long they took.

Call rate and error ratio come from the usage ledger's counters (every call
counted once, by its callee's sidecar, including the ones refused before the
handler); the p95 latency from the server spans of the trace store (the
callee's own measure of a call, which the ledger does not keep per call: it
holds only a latency sum). An edge without spans in the window has no p95.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from deptmesh.sidecar.cli.usage import Summaries
from deptmesh.sidecar.tracing.attributes import CALLER_SERVICE
from deptmesh.sidecar.tracing.store import SpanRecord

__all__ = ["CallGraph", "Edge", "call_graph", "percentile"]


@dataclass(frozen=True, slots=True)
class Edge:
    caller: str
    callee: str
    calls: int
    # Calls that did not end OK: errors, throttled and denied.
    failed: int
    window_seconds: float
    p95_ms: float | None = None

    @property
    def calls_per_minute(self) -> float:
        return self.calls * 60 / self.window_seconds

    @property
    def error_ratio(self) -> float:
        return self.failed / self.calls if self.calls else 0.0


@dataclass(frozen=True, slots=True)
class CallGraph:
    nodes: tuple[str, ...]
    edges: tuple[Edge, ...]


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of `values` (not empty): the smallest value with at
    least `share` of them at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def call_graph(
    usage: Summaries,
    server_spans: Iterable[SpanRecord],
    window_seconds: float,
    departments: Iterable[str] = (),
) -> CallGraph:
    """The graph of `usage` (the ledger's summaries over the window) with each edge's p95
    from `server_spans`; `departments` are drawn even when nothing called them."""
    calls: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for (caller, callee, _), summary in usage.items():
        counts = calls[(caller, callee)]
        counts[0] += summary.calls
        counts[1] += summary.errors + summary.throttled + summary.denied
    latencies: dict[tuple[str, str], list[float]] = defaultdict(list)
    for span in server_spans:
        calling = span.attributes.get(CALLER_SERVICE)
        if isinstance(calling, str) and calling:
            latencies[(calling, span.service)].append((span.end_ns - span.start_ns) / 1e6)
    edges = tuple(
        Edge(
            caller,
            callee,
            total,
            failed,
            window_seconds,
            percentile(latencies[(caller, callee)], 0.95)
            if latencies.get((caller, callee))
            else None,
        )
        for (caller, callee), (total, failed) in sorted(calls.items())
    )
    nodes = {*departments, *(e.caller for e in edges), *(e.callee for e in edges)}
    return CallGraph(tuple(sorted(nodes)), edges)
