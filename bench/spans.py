"""What one recorded span costs, in-process: the sidecar's way against the SDK tracer's.

- sdk_us: `Tracer.start_span` with a server span's attributes, one attribute
  more, `end()`, into a BatchSpanProcessor (the exporter does nothing).
- recorded_us: the same span as the sidecar records it (`Tracing.record`, a
  RecordedSpan whose end hands a ReadableSpan to the same processor).
- store_us: writing finished spans into the local trace store, per span, in
  batches of 512 (what the export thread does).
- the same for spans that each carry a business key (`deptmesh.key.claim`, a
  value per span), which the store also indexes (printed, not in the last line).

    python -m bench.spans [--spans N]

The last line is for scripts: `spans sdk_us=<n> recorded_us=<n> store_us=<n>`.
bench/overhead.py measures the whole chain in a loaded server instead.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import INVALID_SPAN_CONTEXT, SpanKind

from deptmesh.sidecar.tracing import Tracing
from deptmesh.sidecar.tracing.store import TraceStoreExporter

ATTRIBUTES = {
    "rpc.system": "grpc",
    "rpc.service": "deptmesh.hr.v1.EmployeeService",
    "rpc.method": "GetEmployee",
    "network.peer.address": "127.0.0.1",
    "network.peer.port": 43210,
    "deptmesh.callee.spiffe_id": "spiffe://dev.deptmesh.local/ns/default/dc/dc1/svc/hr",
    "deptmesh.caller.service": "reimbursement",
    "deptmesh.caller.spiffe_id": "spiffe://dev.deptmesh.local/ns/default/dc/dc1/svc/reimbursement",
    "deptmesh.caller.department": "reimbursement",
    "deptmesh.deadline.remaining_s": 9.998,
}
KEY = "deptmesh.key.claim"
BATCH = 512


class Keep(SpanExporter):
    """Keeps what it is given, for the store measurement."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def _us_per(count: int, run: Callable[[], None]) -> float:
    started = time.perf_counter_ns()
    for _ in range(count):
        run()
    return (time.perf_counter_ns() - started) / count / 1000


def _store_us(spans: Sequence[ReadableSpan]) -> float:
    """Microseconds per span to write `spans` into a new store, BATCH at a time."""
    with tempfile.TemporaryDirectory() as directory:
        store = TraceStoreExporter(Path(directory) / "traces.sqlite")
        started = time.perf_counter_ns()
        for first in range(0, len(spans), BATCH):
            store.export(spans[first : first + BATCH])
        elapsed = time.perf_counter_ns() - started
        store.shutdown()
    return elapsed / len(spans) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.spans")
    parser.add_argument("--spans", type=int, default=50_000)
    count = parser.parse_args().spans

    kept = Keep()
    processor = BatchSpanProcessor(kept, max_queue_size=3 * count, schedule_delay_millis=60_000)
    tracing = Tracing.start("hr", exporter="none", processors=[processor])
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")

    def sdk_span() -> None:
        span = tracer.start_span(
            "EmployeeService/GetEmployee", kind=SpanKind.SERVER, attributes=ATTRIBUTES
        )
        span.set_attribute("rpc.grpc.status_code", 0)
        span.end()

    def recorded_span() -> None:
        span = tracing.record(
            "EmployeeService/GetEmployee", INVALID_SPAN_CONTEXT, SpanKind.SERVER, dict(ATTRIBUTES)
        )
        span.set_attribute("rpc.grpc.status_code", 0)
        span.end()

    claims = iter(range(count))

    def keyed_span() -> None:
        span = tracing.record(
            "ReimbursementService/GetClaim",
            INVALID_SPAN_CONTEXT,
            SpanKind.SERVER,
            {**ATTRIBUTES, KEY: f"clm_{next(claims):08x}"},
        )
        span.set_attribute("rpc.grpc.status_code", 0)
        span.end()

    sdk_us = _us_per(count, sdk_span)
    recorded_us = _us_per(count, recorded_span)
    _us_per(count, keyed_span)
    processor.force_flush()
    tracing.shutdown()

    store_us = _store_us(kept.spans[-2 * count : -count])  # the recorded ones
    keyed_store_us = _store_us(kept.spans[-count:])

    print(f"SDK tracer span (start, attribute, end):   {sdk_us:6.2f} us")
    print(f"sidecar RecordedSpan (same span):          {recorded_us:6.2f} us")
    print(f"trace store write, per span, {BATCH} a batch: {store_us:6.2f} us")
    print(f"the same, each span with a business key:   {keyed_store_us:6.2f} us")
    print(f"spans sdk_us={sdk_us:.2f} recorded_us={recorded_us:.2f} store_us={store_us:.2f}")


if __name__ == "__main__":
    main()
