"""Tracing cross-department calls with OpenTelemetry: one span per call on each side.

`Tracing.start(service, ...)` gives a process its tracer: spans are sampled
parent-based at a configurable ratio and exported off the request path by a
batch processor, to the local trace store (sidecar/trace_store.py, the default:
no server needed) or over OTLP/gRPC to a collector. Pass it to the server
(`tracing=`), where the chain opens a server span per call, and to
`client.connect`, whose channel opens a client span per call and sends the
W3C `traceparent`, `tracestate` and `baggage` headers.

Spans follow the OpenTelemetry RPC conventions (rpc.system, rpc.service,
rpc.method, rpc.grpc.status_code, server.*, network.peer.*) and carry the
verified caller and callee identities (sidecar/trace_attributes.py); a denied or
throttled call has an event saying why.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    INVALID_SPAN_CONTEXT,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sidecar import trace_attributes as attr
from sidecar._chain import Call, RpcMethod
from sidecar._recorded_span import RecordedSpan
from sidecar.caller import CURRENT_CALLER, Caller
from sidecar.deadline import remaining_seconds

__all__ = ["ClientSpan", "Exporter", "TraceServerCalls", "Tracing", "client_span"]

Exporter = Literal["store", "otlp", "none"]

# W3C trace context and baggage, in and out.
PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])

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


class Tracing:
    """A process's tracer and where its spans go.

    Sampling is parent-based: a call carrying a trace context follows its
    caller's decision, and a new trace is recorded with `sampling_ratio`. The
    decision is taken here: an unrecorded span is two random ids (its context is
    built when asked for) with no attributes gathered, a recorded one a RecordedSpan
    (sidecar/_recorded_span.py, about 8 µs against the SDK's 28) whose end goes
    to the span processors. Use `span(name)` for spans of your own, so they
    follow the same rule.
    """

    def __init__(
        self,
        provider: TracerProvider,
        service: str,
        spiffe_id: str = "",
        ratio: float = 1.0,
        processors: Sequence[SpanProcessor] = (),
    ) -> None:
        # The SDK provider, for other instrumentation to share these processors; the
        # sidecar's own spans are RecordedSpans, which cost a fifth of an SDK span.
        self.provider = provider
        self.service = service
        # This process's own verified identity, recorded as the caller of its client spans.
        self.spiffe_id = spiffe_id
        self._bound = round(ratio * 2**64)  # a new trace is recorded if 64 random bits fall below
        self._resource = provider.resource
        self._scope = InstrumentationScope("deptmesh.sidecar")
        self._processors = tuple(processors)

    def record(
        self, name: str, parent: SpanContext, kind: SpanKind, attributes: dict[str, Any]
    ) -> RecordedSpan:
        """A recorded span under `parent` (invalid for a new trace); call `records` first."""
        return RecordedSpan(
            name,
            _context_of(parent, _child_ids(parent), _SAMPLED),
            parent if parent.is_valid else None,
            kind,
            attributes,
            resource=self._resource,
            scope=self._scope,
            sink=self._finished,
        )

    def _finished(self, span: ReadableSpan) -> None:
        for processor in self._processors:
            processor.on_end(span)

    def records(self, parent: SpanContext) -> bool:
        """Whether a span under `parent` (invalid for a new trace) is recorded."""
        if parent.is_valid:
            return parent.trace_flags.sampled
        return random.getrandbits(64) < self._bound

    @contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[trace.Span]:
        """An internal span of your own (a root, or a child of the current span), current
        inside the `with`."""
        parent = trace.get_current_span().get_span_context()
        span = (
            self.record(name, parent, SpanKind.INTERNAL, attributes)
            if self.records(parent)
            else unrecorded(parent)
        )
        with trace.use_span(span, end_on_exit=True):
            yield span

    @classmethod
    def start(
        cls,
        service: str,
        *,
        exporter: Exporter = "store",
        store_path: Path | None = None,
        otlp_endpoint: str | None = None,
        sampling_ratio: float = 1.0,
        processors: Sequence[SpanProcessor] = (),
        spiffe_id: str = "",
    ) -> Tracing:
        """Tracing for `service`; `sampling_ratio` of new traces are recorded (parent-based)."""
        if not 0.0 <= sampling_ratio <= 1.0:
            raise ValueError(f"sampling_ratio must be within 0..1, got {sampling_ratio}")
        provider = TracerProvider(
            resource=Resource.create({"service.name": service}),
            # The ratio is applied to new traces by Tracing.records, before the SDK sees them.
            sampler=ParentBased(ALWAYS_ON),
        )
        chosen = _exporter(exporter, store_path, otlp_endpoint)
        # Spans reach the exporter within a second; a burst of up to 8192 waits in
        # the queue rather than being dropped.
        batching = (
            []
            if chosen is None
            else [BatchSpanProcessor(chosen, max_queue_size=8192, schedule_delay_millis=1000)]
        )
        every = [*batching, *processors]
        for processor in every:
            provider.add_span_processor(processor)
        return cls(provider, service, spiffe_id, sampling_ratio, every)

    def shutdown(self) -> None:
        """Exports what is still buffered, then stops."""
        self.provider.shutdown()


def _exporter(kind: Exporter, store_path: Path | None, endpoint: str | None) -> SpanExporter | None:
    if kind == "none":
        return None
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        if not endpoint:
            raise ValueError("the otlp exporter needs an endpoint (HOST:PORT)")
        return OTLPSpanExporter(endpoint=endpoint, insecure=True)
    from sidecar.trace_store import TraceStoreExporter, default_store_path

    return TraceStoreExporter(store_path or default_store_path())


_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
# Distinct (method, caller) pairs whose span attributes are kept ready.
_KNOWN_ATTRIBUTE_SETS = 4096
_PROPAGATED = frozenset({"traceparent", "tracestate", "baggage"})


def _child_ids(parent: SpanContext) -> tuple[int, int]:
    """(trace id, span id) of a new span in the parent's trace, or in a new trace when
    `parent` is invalid."""
    trace_id = parent.trace_id if parent.is_valid else random.getrandbits(128)
    return trace_id, random.getrandbits(64)


def _context_of(parent: SpanContext, ids: tuple[int, int], flags: TraceFlags) -> SpanContext:
    """The context of a span with these ids under `parent` (invalid for a new trace)."""
    trace_id, span_id = ids
    return SpanContext(
        trace_id,
        span_id,
        is_remote=False,
        trace_flags=flags,
        trace_state=parent.trace_state if parent.is_valid else None,
    )


class _UnrecordedSpan(NonRecordingSpan):
    """A span that is not recorded. Its ids are drawn at once, but its SpanContext is
    built when first asked for: most unsampled calls are only asked when their access
    event is written, on the drain thread."""

    def __init__(self, parent: SpanContext) -> None:
        self._parent = parent
        self._ids = _child_ids(parent)
        self._built: SpanContext | None = None

    def get_span_context(self) -> SpanContext:
        # Two threads asking at once build equal contexts: no lock needed.
        context = self._built
        if context is None:
            context = self._built = _context_of(self._parent, self._ids, _NOT_SAMPLED)
        return context

    def __repr__(self) -> str:
        return f"NonRecordingSpan({self.get_span_context()!r})"


def unrecorded(parent: SpanContext) -> NonRecordingSpan:
    """A span that is not recorded: a new span id in the parent's trace, or a new trace."""
    return _UnrecordedSpan(parent)


def _make_current(span: trace.Span, parent: otel_context.Context | None) -> None:
    # Not detached when the call ends: like every per-call context variable of the
    # chain (see _chain.py), the next call on this thread or task sets it again.
    otel_context.attach(trace.set_span_in_context(span, parent))


@functools.lru_cache(maxsize=1024)  # one entry per client connection, parsed once
def _peer(peer: str) -> tuple[str, int]:
    """('127.0.0.1', 5555) from grpc's 'ipv4:127.0.0.1:5555' (or ipv6:[::1]:5555)."""
    _, _, address = peer.partition(":")
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


class TraceServerCalls:
    """The tracing stage of the server chain: a server span around each call."""

    def __init__(self, tracing: Tracing, own_spiffe_id: str) -> None:
        self._tracing = tracing
        self._own_spiffe_id = own_spiffe_id
        # (method, caller SPIFFE ID) -> the attributes every such span starts with.
        self._attributes: dict[tuple[str, str], dict[str, Any]] = {}

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
        attributes["network.peer.address"], attributes["network.peer.port"] = _peer(context.peer())
        left = remaining_seconds()
        if left is not None:
            attributes[attr.DEADLINE_REMAINING] = round(left, 6)
        span = self._tracing.record(method.path[1:], parent_span, SpanKind.SERVER, attributes)
        call.span = span
        _make_current(span, parent)

    def finish(self, call: Call) -> None:
        span = call.span
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
        span.end()


class ClientSpan:
    """The client span of one outbound call, and the metadata that carries its context."""

    __slots__ = ("metadata", "span")

    def __init__(self, span: trace.Span, metadata: tuple[tuple[str, str | bytes], ...]) -> None:
        self.span = span
        self.metadata = metadata

    def attempt(self, address: str) -> None:
        """The endpoint an attempt went to (the last one is the one that answered)."""
        if self.span.is_recording():
            host, port = _peer(f"ip:{address}")
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


def tag_current_call(name: str, value: str) -> None:
    """Records what the call being handled is about (for example the claim) on its span,
    so on-call can find the trace by it (`deptmesh trace --claim`)."""
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(name, value)
