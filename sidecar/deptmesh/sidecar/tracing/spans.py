"""What every span the sidecar makes needs: ids, contexts, propagation, peers.

A span is recorded or not when it starts (tracing/tracer.py decides); an
unrecorded one costs two random ids, and its SpanContext is built only when
something asks for it.
"""

from __future__ import annotations

import functools
import random

from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    TraceFlags,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = ["PROPAGATOR", "SAMPLED", "child_ids", "context_of", "peer_of", "unrecorded"]

# W3C trace context and baggage, in and out.
PROPAGATOR = CompositePropagator([TraceContextTextMapPropagator(), W3CBaggagePropagator()])

SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)


def child_ids(parent: SpanContext) -> tuple[int, int]:
    """(trace id, span id) of a new span in the parent's trace, or in a new trace when
    `parent` is invalid."""
    trace_id = parent.trace_id if parent.is_valid else random.getrandbits(128)
    return trace_id, random.getrandbits(64)


def context_of(parent: SpanContext, ids: tuple[int, int], flags: TraceFlags) -> SpanContext:
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
        self._ids = child_ids(parent)
        self._built: SpanContext | None = None

    def get_span_context(self) -> SpanContext:
        # Two threads asking at once build equal contexts: no lock needed.
        context = self._built
        if context is None:
            context = self._built = context_of(self._parent, self._ids, _NOT_SAMPLED)
        return context

    def __repr__(self) -> str:
        return f"NonRecordingSpan({self.get_span_context()!r})"


def unrecorded(parent: SpanContext) -> NonRecordingSpan:
    """A span that is not recorded: a new span id in the parent's trace, or a new trace."""
    return _UnrecordedSpan(parent)


@functools.lru_cache(maxsize=1024)  # one entry per client connection, parsed once
def peer_of(peer: str) -> tuple[str, int]:
    """('127.0.0.1', 5555) from grpc's 'ipv4:127.0.0.1:5555' (or ipv6:[::1]:5555)."""
    _, _, address = peer.partition(":")
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0
