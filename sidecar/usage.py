"""Usage per (caller, method, status): metering, chargeback, metrics and the access log.

The server chain's metering stage records every call a verified caller made,
denied and throttled ones included: calls, throttled (and shadow-throttled)
calls, errors, request and response bytes, latency (a histogram, for
Prometheus), and the calls in flight. With an `access_log` it also writes one
event per call there (sidecar/access_log.py), with the trace and span ids of
the call's server span. Counting is a dict update under a lock; reading takes a
snapshot.
"""

from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import Message

from sidecar._chain import Call
from sidecar.access_log import AccessLog
from sidecar.caller import CURRENT_CALLER

__all__ = ["LATENCY_BUCKETS_S", "Usage", "UsageRecord"]

# Upper bounds of the latency histogram, in seconds (Prometheus's defaults).
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(slots=True)
class UsageRecord:
    calls: int = 0
    throttled: int = 0
    shadow_throttled: int = 0  # would have been throttled: the tier is in shadow mode
    errors: int = 0
    request_bytes: int = 0
    response_bytes: int = 0
    latency_ms_total: float = 0.0
    latency_ms_max: float = 0.0
    # Calls per latency bucket (the last one: slower than every bound).
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS_S) + 1))


class Usage:
    """A server chain stage that counts each call against its caller, and logs it."""

    def __init__(self, service: str, *, access_log: AccessLog | None = None) -> None:
        self.service = service
        self._access_log = access_log
        self._records: dict[tuple[str, str, grpc.StatusCode], UsageRecord] = {}
        self._in_flight: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def start(self, call: Call) -> None:
        caller = CURRENT_CALLER.get()
        key = ("" if caller is None else caller.service, call.method.path)
        with self._lock:
            self._in_flight[key] = self._in_flight.get(key, 0) + 1

    def finish(self, call: Call) -> None:
        caller = CURRENT_CALLER.get()
        caller_name = "" if caller is None else caller.service
        latency_s = (time.perf_counter_ns() - call.started_ns) / 1e9
        request_bytes = call.request.ByteSize() if isinstance(call.request, Message) else 0
        response_bytes = call.response.ByteSize() if isinstance(call.response, Message) else 0
        note = call.quota
        path = call.method.path
        flight = (caller_name, path)
        with self._lock:
            left = self._in_flight[flight] - 1
            if left:
                self._in_flight[flight] = left
            else:
                del self._in_flight[flight]
            record = self._records.get((*flight, call.code))
            if record is None:
                record = self._records[(*flight, call.code)] = UsageRecord()
            record.calls += 1
            throttled = note is not None and note.throttle is not None
            if throttled and note.shadow:
                record.shadow_throttled += 1  # it ran, and may have failed as well
            if throttled and not note.shadow:
                record.throttled += 1
            elif call.code is not grpc.StatusCode.OK:
                record.errors += 1
            record.request_bytes += request_bytes
            record.response_bytes += response_bytes
            record.latency_ms_total += latency_s * 1e3
            record.latency_ms_max = max(record.latency_ms_max, latency_s * 1e3)
            record.latency_counts[bisect.bisect_left(LATENCY_BUCKETS_S, latency_s)] += 1
        if self._access_log is not None:
            context = call.span.get_span_context() if call.span is not None else None
            self._access_log.record(
                (
                    time.time(),
                    caller_name,
                    path,
                    call.code,
                    round(latency_s * 1e3, 3),
                    request_bytes,
                    response_bytes,
                    0 if context is None else context.trace_id,
                    0 if context is None else context.span_id,
                )
            )

    def in_flight(self) -> dict[tuple[str, str], int]:
        """(caller, method) -> calls running now."""
        with self._lock:
            return dict(self._in_flight)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every record so far, JSON-ready, with its caller, method and status."""
        with self._lock:
            return [
                {
                    "caller": caller,
                    "method": method,
                    "status": code.name,
                    "calls": r.calls,
                    "throttled": r.throttled,
                    "shadow_throttled": r.shadow_throttled,
                    "errors": r.errors,
                    "request_bytes": r.request_bytes,
                    "response_bytes": r.response_bytes,
                    "latency_ms_total": r.latency_ms_total,
                    "latency_ms_max": r.latency_ms_max,
                    "latency_counts": list(r.latency_counts),
                }
                for (caller, method, code), r in sorted(
                    self._records.items(), key=lambda item: (item[0][0], item[0][1])
                )
            ]
