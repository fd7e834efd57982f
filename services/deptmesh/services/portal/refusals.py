"""Calls the mesh refused (denied by authorization, throttled by quota), with the reason
the callee's chain recorded on its server span."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from deptmesh.sidecar.tracing.attributes import (
    CALLER_SERVICE,
    DENIED_EVENT,
    REASON,
    THROTTLED_EVENT,
)
from deptmesh.sidecar.tracing.store import SpanRecord

__all__ = ["Refusal", "refusals"]

_KINDS = {DENIED_EVENT: "denied", THROTTLED_EVENT: "throttled"}


@dataclass(frozen=True, slots=True)
class Refusal:
    time_ns: int
    kind: str  # "denied" or "throttled"
    caller: str
    callee: str
    method: str
    reason: str
    trace_id: str


def refusals(server_spans: Iterable[SpanRecord], limit: int) -> list[Refusal]:
    """The refusals recorded on `server_spans` (the latest first, as given), at most
    `limit`."""
    found: list[Refusal] = []
    for span in server_spans:
        for event in span.events:
            kind = _KINDS.get(event.name)
            if kind is None:
                continue
            found.append(
                Refusal(
                    time_ns=event.time_ns,
                    kind=kind,
                    caller=str(span.attributes.get(CALLER_SERVICE) or "?"),
                    callee=span.service,
                    method=span.name,
                    reason=str(event.attributes.get(REASON) or "(no reason recorded)"),
                    trace_id=span.trace_id,
                )
            )
            if len(found) == limit:
                return found
    return found
