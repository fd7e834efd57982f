"""deptmesh.metering.v1.UsageLedgerService: who may report and read, over UsageStore and pricing.

A department reports only the usage it served (each record's callee is the
calling department); a department's usage and statements are read by the
department itself or by the platform. A closed month's statement is priced
once, the first time it is asked for after the month ended, and kept: every
later answer is those bytes.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from deptmesh.metering.v1 import metering_pb2 as pb
from deptmesh.metering.v1 import metering_pb2_grpc
from deptmesh.services.metering.months import Month
from deptmesh.services.metering.pricing import price_statement
from deptmesh.services.metering.records import usage_entries
from deptmesh.services.metering.store import UsageStore, UsageSum
from deptmesh.services.validation import FieldViolations
from deptmesh.sidecar import FailedPrecondition, PermissionDenied, current_caller
from deptmesh.sidecar.metering.rate_card import RateCards

__all__ = ["MAX_QUERY_DAYS", "PLATFORM", "UsageLedgerServicer", "utc_now"]

# The platform's mesh identity: it reads every department's usage and statements.
PLATFORM = "platform"
MAX_QUERY_DAYS = 400


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _summary(usage: UsageSum) -> pb.UsageSummary:
    return pb.UsageSummary(
        caller=usage.caller,
        callee=usage.callee,
        method=usage.method,
        calls=usage.calls,
        cost_units=usage.cost_units,
        errors=usage.errors,
        throttled=usage.throttled,
        denied=usage.denied,
        request_bytes=usage.request_bytes,
        response_bytes=usage.response_bytes,
        latency_sum_micros=usage.latency_sum_micros,
    )


def _check_reader(department: str) -> None:
    """PERMISSION_DENIED (NOT_YOUR_USAGE) unless the caller is `department` or the platform."""
    reader = current_caller().service
    if reader not in (department, PLATFORM):
        raise PermissionDenied(
            f"{reader} may not read the usage of {department}: only {department} itself"
            f" and {PLATFORM} may",
            reason="NOT_YOUR_USAGE",
            metadata={"department": department, "caller": reader},
        )


class UsageLedgerServicer(metering_pb2_grpc.UsageLedgerServiceServicer):
    def __init__(
        self,
        store: UsageStore,
        rate_cards: Callable[[], RateCards],
        *,
        now: Callable[[], datetime.datetime] = utc_now,
    ) -> None:
        """`rate_cards` returns the cards in force (a watched document: cheap to call)."""
        self._store = store
        self._rate_cards = rate_cards
        self._now = now

    def ReportUsage(
        self, request: pb.ReportUsageRequest, context: grpc.ServicerContext
    ) -> pb.ReportUsageResponse:
        entries = usage_entries(request.records, int(self._now().timestamp()))
        reporter = current_caller().service
        for n, entry in enumerate(entries):
            if entry.callee != reporter:
                raise PermissionDenied(
                    f"records[{n}] is usage of {entry.callee}: {reporter} reports only"
                    " the usage it served; nothing was recorded",
                    reason="NOT_THE_CALLEE",
                    metadata={"callee": entry.callee, "caller": reporter},
                )
        recorded, duplicates = self._store.record(entries)
        return pb.ReportUsageResponse(recorded=recorded, duplicates=duplicates)

    def QueryUsage(
        self, request: pb.QueryUsageRequest, context: grpc.ServicerContext
    ) -> pb.QueryUsageResponse:
        violations = FieldViolations()
        violations.identifier("department", request.department)
        start = request.start_time.seconds
        end = (
            request.end_time.seconds
            if request.HasField("end_time")
            else int(self._now().timestamp()) + 1
        )
        if not request.HasField("start_time"):
            violations.add("start_time", "required")
        elif end <= start:
            violations.add("end_time", "must be after start_time")
        elif end - start > MAX_QUERY_DAYS * 86400:
            violations.add("end_time", f"must be at most {MAX_QUERY_DAYS} days after start_time")
        violations.raise_if_any()
        _check_reader(request.department)
        # Usage counts by the minute it began in: [start, end) holds the minutes that did.
        usage = self._store.usage(request.department, start, end)
        return pb.QueryUsageResponse(usage=[_summary(u) for u in usage])

    def GetStatement(
        self, request: pb.GetStatementRequest, context: grpc.ServicerContext
    ) -> pb.GetStatementResponse:
        now = self._now()
        current = Month.of(now)
        violations = FieldViolations()
        violations.identifier("department", request.department)
        month: Month | None = None
        if not request.month:
            violations.add("month", "required")
        else:
            try:
                month = Month.parse(request.month)
            except ValueError:
                violations.add("month", "must be YYYY-MM, for example 2026-11")
            else:
                if month > current:
                    violations.add("month", f"must not be in the future (this month is {current})")
        violations.raise_if_any()
        if month is None:  # a violation was added: raised above
            raise RuntimeError("a month was refused without a field violation")
        department = request.department
        _check_reader(department)
        closed = month < current
        if closed:
            kept = self._store.closed_statement(department, str(month))
            if kept is not None:
                return pb.GetStatementResponse(statement=pb.Statement.FromString(kept))
        card = self._rate_cards().for_month(str(month))
        if card is None:
            raise FailedPrecondition(
                f"no rate card was in force in {month}",
                reason="NO_RATE_CARD",
                metadata={"month": str(month)},
            )
        generated = Timestamp()
        generated.FromDatetime(now)
        statement = price_statement(
            department,
            str(month),
            self._store.billable_units(department, month.start_seconds),
            card,
            closed=closed,
            generate_time=generated,
        )
        if closed:
            kept = self._store.keep_closed_statement(
                department, str(month), statement.SerializeToString(deterministic=True)
            )
            statement = pb.Statement.FromString(kept)
        return pb.GetStatementResponse(statement=statement)
