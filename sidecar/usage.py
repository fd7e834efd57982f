"""Usage per (caller, method, status): the raw material for metering and chargeback.

The server chain's metering stage records every call a verified caller made,
denied and throttled ones included: calls, throttled (and shadow-throttled)
calls, errors, request and response bytes, latency. Counting is a dict update
under a lock; reading takes a snapshot.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import grpc
from google.protobuf.message import Message

from sidecar._chain import Call
from sidecar.caller import CURRENT_CALLER

__all__ = ["Usage", "UsageRecord"]


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


class Usage:
    """A server chain stage that counts each call against its caller."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._records: dict[tuple[str, str, grpc.StatusCode], UsageRecord] = {}
        self._lock = threading.Lock()

    def start(self, call: Call) -> None:
        return None

    def finish(self, call: Call) -> None:
        caller = CURRENT_CALLER.get()
        latency_ms = (time.perf_counter_ns() - call.started_ns) / 1e6
        request_bytes = call.request.ByteSize() if isinstance(call.request, Message) else 0
        response_bytes = call.response.ByteSize() if isinstance(call.response, Message) else 0
        note = call.quota
        key = ("" if caller is None else caller.service, call.method.path, call.code)
        with self._lock:
            record = self._records.get(key)
            if record is None:
                record = self._records[key] = UsageRecord()
            record.calls += 1
            if note is not None and note.throttle is not None:
                if note.shadow:
                    record.shadow_throttled += 1
                else:
                    record.throttled += 1
            elif call.code is not grpc.StatusCode.OK:
                record.errors += 1
            record.request_bytes += request_bytes
            record.response_bytes += response_bytes
            record.latency_ms_total += latency_ms
            record.latency_ms_max = max(record.latency_ms_max, latency_ms)

    def snapshot(self) -> list[dict[str, Any]]:
        """Every record so far, JSON-ready, with its caller, method and status."""
        with self._lock:
            return [
                {"caller": caller, "method": method, "status": code.name, **asdict(record)}
                for (caller, method, code), record in sorted(
                    self._records.items(), key=lambda item: (item[0][0], item[0][1])
                )
            ]
