"""The client span of an outbound call, and the W3C headers that carry its context.

A service channel builds one `ClientSpans` per method it is asked for and starts a
span per call with it; the span ends when the call ends, which for a future or a
response stream is after the call that started it has returned, so the span is
not made current: its context travels in the headers, injected explicitly.
"""

from __future__ import annotations

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

__all__ = ["ClientSpan", "ClientSpans"]

Metadata = tuple[tuple[str, str | bytes], ...]


class ClientSpan:
    """The client span of one outbound call, and the metadata that carries its context."""

    __slots__ = ("metadata", "span")

    def __init__(self, span: trace.Span, metadata: Metadata) -> None:
        self.span = span
        self.metadata = metadata

    def attempt(self, address: str) -> None:
        """The endpoint an attempt went to (the last one is the one that answered)."""
        if self.span.is_recording():
            host, port = peer_of(f"ip:{address}")
            self.span.set_attribute("network.peer.address", host)
            self.span.set_attribute("network.peer.port", port)

    def ended(self, code: grpc.StatusCode) -> None:
        """Records how the call ended, without ending the span."""
        if self.span.is_recording():
            self.span.set_attribute("rpc.grpc.status_code", code.value[0])
            if code is not grpc.StatusCode.OK:
                self.span.set_status(Status(StatusCode.ERROR, code.name))

    def end(self, code: grpc.StatusCode) -> None:
        """Records how the call ended and ends the span."""
        self.ended(code)
        self.span.end()


class ClientSpans:
    """Starts the client spans of calls to one method of one service; what every such
    span shares is decided here, once."""

    __slots__ = ("_attributes", "_name", "_tracing")

    def __init__(self, tracing: Tracing, callee: str, path: str) -> None:
        self._tracing = tracing
        self._name = path.lstrip("/")
        self._attributes = _client_attributes(tracing, callee, path)

    def start(self, metadata: Any, timeout: float | None = None) -> ClientSpan:
        """A started span under the current one, and `metadata` plus its trace headers.

        `timeout` is the deadline the call is sent with; without one the span
        records the time the inbound call being handled has left, if any.
        """
        parent = trace.get_current_span().get_span_context()
        span: trace.Span
        if self._tracing.records(parent):
            attributes = self._attributes.copy()
            left = remaining_seconds() if timeout is None else timeout
            if left is not None:
                attributes[attr.DEADLINE_REMAINING] = round(left, 6)
            span = self._tracing.record(self._name, parent, SpanKind.CLIENT, attributes)
        else:
            span = unrecorded(parent)
        headers: dict[str, str] = {}
        # The current context (with its baggage) plus this span, without attaching it.
        PROPAGATOR.inject(headers, context=trace.set_span_in_context(span))
        return ClientSpan(span, (*(metadata or ()), *headers.items()))


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
    return attributes
