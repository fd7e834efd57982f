"""Tracing cross-department calls with OpenTelemetry: one span per call on each side.

What a service uses: `Tracing.start(service, ...)` gives the process its tracer
(tracer.py), passed to the server (`tracing=`) and to `connect`;
`tag_current_call` records what the call being handled is about, for a
business key no message carries (tags.py).

Behind them: the server chain's tracing stage (stage.py) opens a server span
per call, continuing the caller's trace from the W3C headers (spans.py), and
records the business keys the contract declares on the request and response
fields (key_fields.py); the channel opens a client span per call and sends the
headers (client_span.py). Recorded spans are RecordedSpans (recorded_span.py),
exported to the local trace store (store/) or over OTLP. Spans follow the
OpenTelemetry RPC conventions and carry the verified caller and callee
identities (attributes.py).
"""

from deptmesh.sidecar.tracing.tags import tag_current_call
from deptmesh.sidecar.tracing.tracer import Exporter, Tracing

__all__ = ["Exporter", "Tracing", "tag_current_call"]
