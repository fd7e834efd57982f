"""The client span of an outbound call, and the W3C headers that carry its context."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.trace import (
    SpanKind,
    Status,
    StatusCode,
)

from deptmesh.sidecar.deadline.budget import remaining_seconds
from deptmesh.sidecar.tracing import attributes as attr
from deptmesh.sidecar.tracing.spans import PROPAGATOR, peer_of, unrecorded
from deptmesh.sidecar.tracing.tracer import Tracing

__all__ = ["ClientSpan", "client_span"]


class ClientSpan:
    """The client span of one outbound call, and the metadata that carries its context."""

    __slots__ = ("metadata", "span")

    def __init__(self, span: trace.Span, metadata: tuple[tuple[str, str | bytes], ...]) -> None:
        self.span = span
        self.metadata = metadata

    def attempt(self, address: str) -> None:
        """The endpoint an attempt went to (the last one is the one that answered)."""
        if self.span.is_recording():
            host, port = peer_of(f"ip:{address}")
            self.span.set_attribute("network.peer.address", host)
            self.span.set_attribute("network.peer.port", port)

    def ended(self, code: grpc.StatusCode) -> None:
        if self.span.is_recording():
            self.span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code is not grpc.StatusCode.OK:
                self.span.set_status(Status(StatusCode.ERROR, code.name))


@contextmanager
def client_span(tracing: Tracing, callee: str, path: str, metadata: Any) -> Iterator[ClientSpan]:
    """A client span for calling `path` on `callee`, current while the call runs."""
    parent = trace.get_current_span().get_span_context()
    span = (
        tracing.record(
            path.lstrip("/"), parent, SpanKind.CLIENT, _client_attributes(tracing, callee, path)
        )
        if tracing.records(parent)
        else unrecorded(parent)
    )
    with trace.use_span(span, end_on_exit=True):
        headers: dict[str, str] = {}
        PROPAGATOR.inject(headers)
        yield ClientSpan(span, (*(metadata or ()), *headers.items()))


def _client_attributes(tracing: Tracing, callee: str, path: str) -> dict[str, Any]:
    service, _, name = path.lstrip("/").partition("/")
    attributes: dict[str, Any] = {
        "rpc.system": "grpc",
        "rpc.service": service,
        "rpc.method": name,
        "server.address": callee,
        attr.CALLEE_SERVICE: callee,
        attr.CALLER_SERVICE: tracing.service,
    }
    if tracing.spiffe_id:
        attributes[attr.CALLER_SPIFFE_ID] = tracing.spiffe_id
    left = remaining_seconds()
    if left is not None:
        attributes[attr.DEADLINE_REMAINING] = round(left, 6)
    return attributes
