"""A process's tracer: the sampling decision, recorded spans, where they are exported.

`Tracing.start(service, ...)` makes one per process. It decides once per span
whether the span is recorded (parent-based, new traces at `sampling_ratio`),
makes recorded spans (RecordedSpan, recorded_span.py) and hands them when they
end to its span processors: a batch processor exporting off the request path
to the local trace store (store/, the default: no server needed) or over
OTLP/gRPC to a collector, and any processors of your own.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    SpanContext,
    SpanKind,
)

from deptmesh.sidecar.tracing.recorded_span import RecordedSpan
from deptmesh.sidecar.tracing.spans import SAMPLED, child_ids, context_of, unrecorded

__all__ = ["Exporter", "Tracing"]

Exporter = Literal["store", "otlp", "none"]


class Tracing:
    """A process's tracer and where its spans go.

    Sampling is parent-based: a call carrying a trace context follows its
    caller's decision, and a new trace is recorded with `sampling_ratio`. The
    decision is taken here: an unrecorded span is two random ids (spans.py: its
    context is built when asked for) with no attributes gathered, a recorded one a
    RecordedSpan (recorded_span.py, a fifth of an SDK span's cost) whose end goes
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
        # (spans held, bound) of the trace store this process writes, for monitoring;
        # None when its spans go elsewhere.
        self.store_fill: Callable[[], tuple[int, int] | None] = _no_store

    def record(
        self, name: str, parent: SpanContext, kind: SpanKind, attributes: dict[str, Any]
    ) -> RecordedSpan:
        """A recorded span under `parent` (invalid for a new trace); call `records` first."""
        return RecordedSpan(
            name,
            context_of(parent, child_ids(parent), SAMPLED),
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
        tracing = cls(provider, service, spiffe_id, sampling_ratio, every)
        from deptmesh.sidecar.tracing.store import TraceStoreExporter

        if isinstance(chosen, TraceStoreExporter):
            tracing.store_fill = chosen.fill
        return tracing

    def shutdown(self) -> None:
        """Exports what is still buffered, then stops."""
        self.provider.shutdown()


def _no_store() -> None:
    return None


def _exporter(kind: Exporter, store_path: Path | None, endpoint: str | None) -> SpanExporter | None:
    if kind == "none":
        return None
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        if not endpoint:
            raise ValueError("the otlp exporter needs an endpoint (HOST:PORT)")
        return OTLPSpanExporter(endpoint=endpoint, insecure=True)
    from deptmesh.sidecar.tracing.store import TraceStoreExporter

    return TraceStoreExporter(store_path)  # None: the default path
