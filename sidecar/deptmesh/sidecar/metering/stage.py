"""MeteringStage per (caller, method, status): metering, chargeback, metrics and the access log.

The server chain's metering stage records every call a verified caller made,
denied and throttled ones included: calls, throttled (and shadow-throttled)
calls, errors, request and response bytes, latency (a histogram, for
Prometheus), and the calls in flight. With an `access_log` it also writes one
event per call there (metering/access_log.py), with the trace and span ids of
the call's server span.

A call's end is one append to a queue; counting and logging happen in batches
on the drain thread (metering/drainer.py) twice a second, and before every
read, so what `snapshot()` and `in_flight()` return includes every call that
has ended. With a `UsageByMinute` the drain also counts each call in its
minute, for the usage ledger (metering/minutes.py, taken by `take_minutes()`).
"""

from __future__ import annotations

import bisect
import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.message import Message
from opentelemetry.trace import Span

from deptmesh.sidecar.caller import CURRENT_CALLER
from deptmesh.sidecar.chain.core import Call, QuotaNote
from deptmesh.sidecar.metering.access_log import AccessLog, Entry
from deptmesh.sidecar.metering.drainer import drain_periodically
from deptmesh.sidecar.metering.minutes import MinuteUsage, UsageByMinute

__all__ = ["LATENCY_BUCKETS_S", "MeteringStage", "UsageRecord"]

# Upper bounds of the latency histogram, in seconds (Prometheus's defaults).
LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LATENCY_BUCKETS_NS = tuple(round(bound * 1e9) for bound in LATENCY_BUCKETS_S)


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


# An ended call as the call path leaves it: an Entry with the request and response
# messages where their sizes go.
_Ended = tuple[float, str, str, grpc.StatusCode, int, Message | None, Message | None, Span | None]


def _sized(ended: tuple[_Ended, QuotaNote | None]) -> tuple[Entry, QuotaNote | None]:
    (when, caller, path, code, duration_ns, request, response, span), note = ended
    return (
        (
            when,
            caller,
            path,
            code,
            duration_ns,
            0 if request is None else request.ByteSize(),
            0 if response is None else response.ByteSize(),
            span,
        ),
        note,
    )


class MeteringStage:
    """A server chain stage that counts each call against its caller, and logs it."""

    def __init__(
        self,
        service: str,
        *,
        access_log: AccessLog | None = None,
        by_minute: UsageByMinute | None = None,
    ) -> None:
        if by_minute is not None and by_minute.service != service:
            raise ValueError(f"usage by minute of {by_minute.service!r}, not of {service!r}")
        self.service = service
        self._access_log = access_log
        self._by_minute = by_minute
        # Calls started and ended, not yet counted: deque.append is atomic, so a call
        # never waits. An ended call comes with what the quota stage decided for it.
        self._started: collections.deque[tuple[str, str]] = collections.deque()
        self._ended: collections.deque[tuple[_Ended, QuotaNote | None]] = collections.deque()
        # What the drains counted: (caller, method) -> calls in flight, and the records.
        self._in_flight: dict[tuple[str, str], int] = {}
        self._records: dict[tuple[str, str, grpc.StatusCode], UsageRecord] = {}
        self._lock = threading.Lock()  # one drain at a time; readers see whole batches
        drain_periodically(self)

    def start(self, call: Call) -> None:
        caller = CURRENT_CALLER.get()
        self._started.append(("" if caller is None else caller.service, call.method.path))

    def finish(self, call: Call) -> None:
        caller = CURRENT_CALLER.get()
        ended: _Ended = (
            time.time(),
            "" if caller is None else caller.service,
            call.method.path,
            call.code,
            time.perf_counter_ns() - call.started_ns,
            # The messages themselves: their sizes are taken in the drain, off the path.
            call.request,
            call.response,
            call.span,  # its ids are read when the entry is logged, off the call's path
        )
        self._ended.append((ended, call.quota))

    def drain(self) -> None:
        """Counts the calls that ended since the last drain and writes their access events."""
        with self._lock:
            # Ended calls first: every call taken from `_ended` then has its start
            # in `_started` already, so no count goes below zero.
            ended, started = self._ended, self._started
            batch = [_sized(ended.popleft()) for _ in range(len(ended))]
            starts = [started.popleft() for _ in range(len(started))]
            in_flight = self._in_flight
            for key in starts:
                in_flight[key] = in_flight.get(key, 0) + 1
            for entry, note in batch:
                key = (entry[1], entry[2])  # (caller, method)
                left = in_flight[key] - 1
                if left:
                    in_flight[key] = left
                else:
                    del in_flight[key]
                self._count(entry, note)
            if self._by_minute is not None and batch:
                self._by_minute.count(batch)
            if self._access_log is not None and batch:
                self._access_log.write(entry for entry, _ in batch)

    def _count(self, entry: Entry, note: QuotaNote | None) -> None:
        _, caller, path, code, duration_ns, request_bytes, response_bytes = entry[:7]
        record = self._records.get((caller, path, code))
        if record is None:
            record = self._records[(caller, path, code)] = UsageRecord()
        record.calls += 1
        if note is not None and note.shadow_throttled:
            record.shadow_throttled += 1  # it ran, and may have failed as well
        if note is not None and note.throttled:
            record.throttled += 1
        elif code is not grpc.StatusCode.OK:
            record.errors += 1
        record.request_bytes += request_bytes
        record.response_bytes += response_bytes
        duration_ms = duration_ns / 1e6
        record.latency_ms_total += duration_ms
        record.latency_ms_max = max(record.latency_ms_max, duration_ms)
        record.latency_counts[bisect.bisect_left(_LATENCY_BUCKETS_NS, duration_ns)] += 1

    def take_minutes(self) -> list[MinuteUsage]:
        """Usage per minute counted since the last take, every ended call included;
        none without a UsageByMinute."""
        self.drain()
        with self._lock:
            return [] if self._by_minute is None else self._by_minute.take()

    def in_flight(self) -> dict[tuple[str, str], int]:
        """(caller, method) -> calls running now."""
        self.drain()
        with self._lock:
            return dict(self._in_flight)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every record so far, JSON-ready, with its caller, method and status."""
        self.drain()
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
