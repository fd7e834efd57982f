"""A stored span as the reader gives it back, for `deptmesh trace` to show."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["SpanEvent", "SpanRecord", "TraceSummary"]


@dataclass(frozen=True, slots=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One stored span. Ids are lowercase hex as OpenTelemetry formats them; kind is
    `server`, `client`, `internal`, `producer` or `consumer`; status is `UNSET`,
    `OK` or `ERROR`; attribute values are what JSON gives back (lists for arrays)."""

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: str
    service: str
    start_ns: int
    end_ns: int
    status: str = "UNSET"
    status_description: str = ""
    attributes: Mapping[str, Any] = field(default_factory=dict)
    events: tuple[SpanEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class TraceSummary:
    """One trace in a list of traces: its first span, when it ran, its size, whether it failed."""

    trace_id: str
    name: str  # the first span's
    service: str
    start_ns: int
    duration_ns: int
    spans: int
    failed: bool
