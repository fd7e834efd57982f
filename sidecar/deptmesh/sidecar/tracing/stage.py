"""The tracing stage of the server chain: a server span around each call.

The span continues the caller's trace (W3C headers) and follows its sampling
decision; a new trace is recorded at the tracer's ratio (tracing/tracer.py).
A recorded span carries the RPC conventions' attributes, the verified caller
and this service's own identity, the time the caller's deadline left, for a
call the chain refused an event saying why, and the business keys the request
and response carry (tracing/key_fields.py, read from a method's descriptors
at its first recorded call). An unrecorded call gathers none of this.
"""

from __future__ import annotations

from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    SpanKind,
    Status,
    StatusCode,
)

from deptmesh.sidecar.caller import CURRENT_CALLER, Caller
from deptmesh.sidecar.chain.core import Call, RpcMethod
from deptmesh.sidecar.deadline.budget import seconds_left
from deptmesh.sidecar.tracing import attributes as attr
from deptmesh.sidecar.tracing.key_fields import NO_KEYS, MethodKeys, method_keys
from deptmesh.sidecar.tracing.spans import PROPAGATOR, peer_of, unrecorded
from deptmesh.sidecar.tracing.tracer import Tracing

__all__ = ["TracingStage"]

# Codes that mean the server failed (the RPC conventions); others are the caller's doing.
_SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


# Distinct (method, caller) pairs whose span attributes are kept ready.
_KNOWN_ATTRIBUTE_SETS = 4096
_PROPAGATED = frozenset({"traceparent", "tracestate", "baggage"})


def _make_current(span: trace.Span, parent: otel_context.Context | None) -> None:
    # Not detached when the call ends: like every per-call context variable of the
    # chain (see chain/core.py), the next call on this thread or task sets it again.
    otel_context.attach(trace.set_span_in_context(span, parent))


class TracingStage:
    """The tracing stage of the server chain: a server span around each call."""

    def __init__(self, tracing: Tracing, own_spiffe_id: str) -> None:
        self._tracing = tracing
        self._own_spiffe_id = own_spiffe_id
        # (method, caller SPIFFE ID) -> the attributes every such span starts with.
        self._attributes: dict[tuple[str, str], dict[str, Any]] = {}
        # Method path -> the business-key fields of its messages (one per served method).
        self._keys: dict[str, MethodKeys] = {}

    def _attributes_of(self, method: RpcMethod, caller: Caller | None) -> dict[str, Any]:
        """A new dict of the span attributes that depend only on the method and the caller."""
        key = (method.path, "" if caller is None else caller.spiffe_id)
        known = self._attributes.get(key)
        if known is None:
            known = {
                "rpc.system": "grpc",
                "rpc.service": method.service,
                "rpc.method": method.name,
                attr.CALLEE_SPIFFE_ID: self._own_spiffe_id,
            }
            if caller is not None:
                known[attr.CALLER_SERVICE] = caller.service
                known[attr.CALLER_SPIFFE_ID] = caller.spiffe_id
                known[attr.CALLER_DEPARTMENT] = caller.department
            if len(self._attributes) >= _KNOWN_ATTRIBUTE_SETS:
                self._attributes.clear()  # more callers than expected: start over
            self._attributes[key] = known
        return known.copy()

    def start(self, call: Call) -> None:
        context = call.context
        headers: dict[str, str] = {}
        for key, value in context.invocation_metadata() or ():
            if key in _PROPAGATED and isinstance(value, str):
                headers[key] = value
        # Without trace headers the span starts a trace: no other span is its parent.
        parent = PROPAGATOR.extract(headers) if headers else None
        parent_span = (
            trace.get_current_span(parent).get_span_context()
            if parent is not None
            else INVALID_SPAN_CONTEXT
        )
        if not self._tracing.records(parent_span):
            span: trace.Span = unrecorded(parent_span)
            call.span = span
            _make_current(span, parent)
            return
        method = call.method
        caller = CURRENT_CALLER.get()
        attributes = self._attributes_of(method, caller)
        attributes["network.peer.address"], attributes["network.peer.port"] = peer_of(
            context.peer()
        )
        left = seconds_left(context.time_remaining())
        if left is not None:
            attributes[attr.DEADLINE_REMAINING] = round(left, 6)
        span = self._tracing.record(method.path[1:], parent_span, SpanKind.SERVER, attributes)
        call.span = span
        _make_current(span, parent)

    def finish(self, call: Call) -> None:
        span = call.span
        if span is None:  # start() always sets it
            return
        code = call.code
        if span.is_recording():
            span.set_attribute("rpc.grpc.status_code", code.value[0])
            refusal = call.refusal
            if refusal is not None:
                event = (
                    attr.THROTTLED_EVENT
                    if code is grpc.StatusCode.RESOURCE_EXHAUSTED
                    else attr.DENIED_EVENT
                )
                span.add_event(event, {attr.REASON: refusal.details})
            if code in _SERVER_ERRORS:
                span.set_status(Status(StatusCode.ERROR, code.name))
            keys = self._keys.get(call.method.path)
            if keys is None:
                keys = self._learn_keys(call.method)
            if keys is not NO_KEYS:
                keys.tag(span, call.request, call.response)
        span.end()

    def _learn_keys(self, method: RpcMethod) -> MethodKeys:
        """Reads the method's key fields from its descriptors, at its first recorded call."""
        # Two threads learning one method at once store equal values: no lock needed.
        keys = self._keys[method.path] = method_keys(method.service, method.name)
        return keys
