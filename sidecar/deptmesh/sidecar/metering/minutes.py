"""Usage per (caller, method, status class) and minute, for the usage ledger.

The metering stage's drain thread (metering/stage.py) hands every batch of
ended calls to `UsageByMinute.count`; the shipper (metering/shipper.py) takes
what was counted since it last asked with `take`. Nothing here runs on a
call's path: a call only appended its entry to the stage's queue.

A call counts in the minute (UTC, wall clock) in which it ended. Its status
class is the contract's StatusClass (deptmesh.metering.v1): THROTTLED when the
quota stage refused it, DENIED for UNAUTHENTICATED and PERMISSION_DENIED
(whoever refused: the sidecar's authorization or the handler's own), OK,
CLIENT_ERROR for the caller's faults, SERVER_ERROR for every other code. Cost
units are calls times the method's declared `quota_cost`, which `cost_of`
resolves once per method, when its usage is first taken.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc

from deptmesh.metering.v1 import metering_pb2
from deptmesh.sidecar.chain.core import QuotaNote
from deptmesh.sidecar.metering.access_log import Entry

__all__ = ["REPORT_USAGE_PATH", "CostOf", "MinuteUsage", "UsageByMinute", "status_class"]

# A method's path -> its cost units per call (its `quota_cost`, 1 when unset).
CostOf = Callable[[str], int]

_LEDGER = metering_pb2.DESCRIPTOR.services_by_name["UsageLedgerService"]
# The ledger's own intake: a department reporting its usage.
REPORT_USAGE_PATH = f"/{_LEDGER.full_name}/{_LEDGER.methods_by_name['ReportUsage'].name}"

_Code = grpc.StatusCode
_CLIENT_ERRORS = frozenset(
    {
        _Code.INVALID_ARGUMENT,
        _Code.NOT_FOUND,
        _Code.ALREADY_EXISTS,
        _Code.FAILED_PRECONDITION,
        _Code.OUT_OF_RANGE,
        _Code.CANCELLED,
    }
)
_DENIALS = frozenset({_Code.UNAUTHENTICATED, _Code.PERMISSION_DENIED})


def _class_of_code(code: grpc.StatusCode) -> int:
    if code is _Code.OK:
        return metering_pb2.STATUS_CLASS_OK
    if code in _DENIALS:
        return metering_pb2.STATUS_CLASS_DENIED
    if code in _CLIENT_ERRORS:
        return metering_pb2.STATUS_CLASS_CLIENT_ERROR
    return metering_pb2.STATUS_CLASS_SERVER_ERROR


# Decided once per code, not per call.
_CLASS_OF_CODE = {code: _class_of_code(code) for code in grpc.StatusCode}


def status_class(code: grpc.StatusCode, note: QuotaNote | None) -> int:
    """How a call that ended with `code` counts (a metering_pb2.StatusClass value)."""
    if note is not None and note.throttled:
        return metering_pb2.STATUS_CLASS_THROTTLED
    return _CLASS_OF_CODE[code]


@dataclass(frozen=True, slots=True)
class MinuteUsage:
    """The calls of one caller to one method that ended one way within one minute."""

    minute: int  # Unix seconds of the minute's start, a multiple of 60
    caller: str
    method: str
    status_class: int  # a metering_pb2.StatusClass value
    calls: int
    cost_units: int
    request_bytes: int
    response_bytes: int
    latency_sum_micros: int


# (minute, caller, method, status class) -> [calls, request bytes, response bytes, latency ns]
_Key = tuple[int, str, str, int]


class UsageByMinute:
    """Counts ended calls per (minute, caller, method, status class) for one service.

    Not thread-safe by itself: the metering stage calls `count` and `take` under
    its own lock.
    """

    def __init__(self, service: str, *, cost_of: CostOf) -> None:
        self.service = service
        self._cost_of = cost_of
        self._costs: dict[str, int] = {}  # method -> cost units per call, resolved once
        self._counts: dict[_Key, list[int]] = {}

    def count(self, batch: Iterable[tuple[Entry, QuotaNote | None]]) -> None:
        """Adds a drained batch of ended calls."""
        counts = self._counts
        for entry, note in batch:
            ended, caller, path, code, duration_ns, request_bytes, response_bytes = entry[:7]
            if not caller:  # no verified caller: nobody to charge
                continue
            key = (int(ended) // 60 * 60, caller, path, status_class(code, note))
            sums = counts.get(key)
            if sums is None:
                counts[key] = [1, request_bytes, response_bytes, duration_ns]
            else:
                sums[0] += 1
                sums[1] += request_bytes
                sums[2] += response_bytes
                sums[3] += duration_ns

    def take(self) -> list[MinuteUsage]:
        """What was counted since the last take, oldest minute first; counting starts anew.

        The ledger's own intake is left out when this service is the ledger and
        reported to itself: counting those reports would make new ones forever.
        """
        counts, self._counts = self._counts, {}
        usage = []
        for (minute, caller, path, kind), (calls, request_bytes, response_bytes, ns) in sorted(
            counts.items()
        ):
            if caller == self.service and path == REPORT_USAGE_PATH:
                continue
            usage.append(
                MinuteUsage(
                    minute=minute,
                    caller=caller,
                    method=path,
                    status_class=kind,
                    calls=calls,
                    cost_units=calls * self._cost(path),
                    request_bytes=request_bytes,
                    response_bytes=response_bytes,
                    latency_sum_micros=ns // 1000,
                )
            )
        return usage

    def _cost(self, path: str) -> int:
        cost = self._costs.get(path)
        if cost is None:
            cost = self._costs[path] = max(1, self._cost_of(path))
        return cost
