"""A recorded span without the SDK's per-span machinery, for the spans on every call.

The OpenTelemetry SDK's `Tracer.start_span` + `Span.end` makes a sampler call,
validates attributes into a bounded mapping, takes locks and copies the span
into a ReadableSpan at the end: four to five times what a RecordedSpan costs
(bench/spans.py measures both), and bench/overhead.py showed that alone took
most of the per-call budget. A sampling decision has already been taken when
one of these is made (`Tracing.records`, tracer.py), and the sidecar sets its
attributes itself, so a span here is a few slots and a dict, and its end builds
the SDK's `ReadableSpan` once and hands it to the span processors, the same
processors and exporters the SDK uses (batching, the trace store, OTLP).

Not supported, as nothing of ours uses them: links (dropped) and processors'
`on_start` (batch and simple processors do nothing there).
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode

__all__ = ["RecordedSpan", "SpanSink"]

# Where a finished span goes: the span processors' on_end.
SpanSink = Callable[[ReadableSpan], None]


class RecordedSpan(trace.Span):
    """A span being recorded; ending it sends a ReadableSpan to `sink`."""

    __slots__ = (
        "_attributes",
        "_context",
        "_end_ns",
        "_events",
        "_kind",
        "_name",
        "_parent",
        "_resource",
        "_scope",
        "_sink",
        "_start_ns",
        "_status",
    )

    def __init__(
        self,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any],
        *,
        resource: Resource,
        scope: InstrumentationScope,
        sink: SpanSink,
    ) -> None:
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._attributes = attributes  # owned by the span from here on
        self._events: list[Event] = []
        self._status = _UNSET
        self._resource = resource
        self._scope = scope
        self._sink = sink
        self._start_ns = time.time_ns()
        self._end_ns: int | None = None

    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_ns is None

    @property
    def attributes(self) -> Mapping[str, Any]:
        """The attributes set so far (as the SDK's spans show theirs); not to be changed."""
        return self._attributes

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end_ns is None:
            self._attributes[key] = value

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._end_ns is None:
            self._attributes.update(attributes)

    def add_event(
        self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None
    ) -> None:
        if self._end_ns is None:
            self._events.append(Event(name, dict(attributes or {}), timestamp or time.time_ns()))

    def update_name(self, name: str) -> None:
        if self._end_ns is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        if self._end_ns is not None:
            return
        self._status = status if isinstance(status, Status) else Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        # The attributes the OpenTelemetry exception conventions name; spans stay on
        # this host or go to the collector, never to a caller.
        self.add_event(
            "exception",
            {
                "exception.type": type(exception).__qualname__,
                "exception.message": str(exception),
                "exception.stacktrace": "".join(traceback.format_exception(exception)),
                "exception.escaped": str(escaped),
                **(attributes or {}),
            },
            timestamp,
        )

    def end(self, end_time: int | None = None) -> None:
        if self._end_ns is not None:
            return
        self._end_ns = end_time or time.time_ns()
        self._sink(
            ReadableSpan(
                self._name,
                self._context,
                self._parent,
                self._resource,
                self._attributes,
                self._events,
                _NO_LINKS,
                self._kind,
                status=self._status,
                start_time=self._start_ns,
                end_time=self._end_ns,
                instrumentation_scope=self._scope,
            )
        )


_NO_LINKS: Sequence[trace.Link] = ()
_UNSET = Status(StatusCode.UNSET)  # immutable, as every Status
