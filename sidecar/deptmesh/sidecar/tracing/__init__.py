"""Tracing cross-department calls with OpenTelemetry: one span per call on each side.

`Tracing.start(service, ...)` gives a process its tracer (tracer.py): spans are
sampled parent-based at a configurable ratio and exported off the request path
by a batch processor, to the local trace store (store.py, the default: no
server needed) or over OTLP/gRPC to a collector. Pass it to the server
(`tracing=`), where the chain's tracing stage (stage.py) opens a server span per
call, and to `connect`, whose channel opens a client span per call
(client_span.py) and sends the W3C `traceparent`, `tracestate` and `baggage`
headers. Spans follow the OpenTelemetry RPC conventions and carry the verified
caller and callee identities (attributes.py).
"""

from deptmesh.sidecar.tracing.client_span import ClientSpan, client_span
from deptmesh.sidecar.tracing.stage import TracingStage
from deptmesh.sidecar.tracing.tags import tag_current_call
from deptmesh.sidecar.tracing.tracer import Exporter, Tracing

__all__ = ["ClientSpan", "Exporter", "Tracing", "TracingStage", "client_span", "tag_current_call"]
