"""A ReportUsage batch checked field by field and turned into the store's entries."""

from __future__ import annotations

import re
from collections.abc import Sequence

from deptmesh.metering.v1 import metering_pb2 as pb
from deptmesh.services.metering.store import UsageEntry
from deptmesh.services.validation import FieldViolations

__all__ = ["MAX_BATCH", "MAX_COUNT", "MAX_RECORD_ID_LENGTH", "usage_entries"]

MAX_BATCH = 5000
MAX_RECORD_ID_LENGTH = 200
# No count of one record reaches this: a month's sums of millions of records stay
# within 64 bits.
MAX_COUNT = 2**40
# A method's quota_cost is a uint32: a record has at most calls x this many units.
MAX_QUOTA_COST = 2**32 - 1
# Clocks of the reporting hosts may run a little ahead of the ledger's.
FUTURE_TOLERANCE_SECONDS = 600

_RECORD_ID = re.compile(rf"[\x21-\x7e]{{1,{MAX_RECORD_ID_LENGTH}}}")
_METHOD = re.compile(r"/[A-Za-z_][A-Za-z0-9_.]{0,200}/[A-Za-z_][A-Za-z0-9_]{0,100}")
_STATUS_CLASSES = frozenset(
    value for value in pb.StatusClass.values() if value != pb.STATUS_CLASS_UNSPECIFIED
)
_COUNTS = ("calls", "cost_units", "request_bytes", "response_bytes", "latency_sum_micros")


def _check(violations: FieldViolations, at: str, record: pb.UsageRecord, now_seconds: int) -> None:
    if not record.record_id:
        violations.add(f"{at}.record_id", "required")
    elif not _RECORD_ID.fullmatch(record.record_id):
        violations.add(
            f"{at}.record_id",
            f"must be 1 to {MAX_RECORD_ID_LENGTH} printable ASCII characters without spaces",
        )
    violations.identifier(f"{at}.caller", record.caller)
    violations.identifier(f"{at}.callee", record.callee)
    if not record.method:
        violations.add(f"{at}.method", "required")
    elif not _METHOD.fullmatch(record.method):
        violations.add(f"{at}.method", "must be a full method name: /package.Service/Method")
    if record.status_class not in _STATUS_CLASSES:
        violations.add(
            f"{at}.status_class", "must be one of OK, CLIENT_ERROR, SERVER_ERROR, THROTTLED, DENIED"
        )
    minute = record.minute
    if not record.HasField("minute"):
        violations.add(f"{at}.minute", "required")
    elif minute.seconds % 60 or minute.nanos or minute.seconds < 0:
        violations.add(f"{at}.minute", "must be the start of a minute (seconds a multiple of 60)")
    elif minute.seconds > now_seconds + FUTURE_TOLERANCE_SECONDS:
        violations.add(f"{at}.minute", "must not be in the future")
    for name in _COUNTS:
        value = getattr(record, name)
        if value < 0:
            violations.add(f"{at}.{name}", "must not be negative")
        elif value >= MAX_COUNT:
            violations.add(f"{at}.{name}", f"must be below {MAX_COUNT}")
    if record.calls == 0:
        violations.add(f"{at}.calls", "must be at least 1")
    elif 0 < record.calls < MAX_COUNT and record.cost_units > record.calls * MAX_QUOTA_COST:
        violations.add(f"{at}.cost_units", "more units than the calls can cost")


def usage_entries(records: Sequence[pb.UsageRecord], now_seconds: int) -> list[UsageEntry]:
    """The batch's records as entries; INVALID_ARGUMENT naming every bad field otherwise."""
    violations = FieldViolations()
    if len(records) > MAX_BATCH:
        violations.add("records", f"at most {MAX_BATCH} records a batch, got {len(records)}")
        violations.raise_if_any()
    for n, record in enumerate(records):
        _check(violations, f"records[{n}]", record, now_seconds)
    violations.raise_if_any()
    return [
        UsageEntry(
            r.record_id,
            r.caller,
            r.callee,
            r.method,
            r.status_class,
            r.minute.seconds,
            r.calls,
            r.cost_units,
            r.request_bytes,
            r.response_bytes,
            r.latency_sum_micros,
        )
        for r in records
    ]
