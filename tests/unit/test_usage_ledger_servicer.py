"""UsageLedgerService's own rules, called in-process as a given department: validation with
every bad field named, reporting only what one served, reading only one's own usage, and
statements (month to date, closed months kept byte for byte, future months refused)."""

from __future__ import annotations

import contextlib
import datetime

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from deptmesh.metering.v1 import metering_pb2 as pb
from deptmesh.services.metering.servicer import UsageLedgerServicer
from deptmesh.services.metering.store import UsageStore
from deptmesh.sidecar.caller import CURRENT_CALLER, Caller
from deptmesh.sidecar.errors import FailedPrecondition, InvalidArgument, PermissionDenied
from deptmesh.sidecar.metering.rate_card import RateCards, parse_rate_cards

GET = "/deptmesh.hr.v1.EmployeeService/GetEmployee"
NOW = datetime.datetime(2026, 3, 15, 12, 0, 30, tzinfo=datetime.UTC)
FEBRUARY = datetime.datetime(2026, 2, 10, 8, 0, tzinfo=datetime.UTC)
MARCH = datetime.datetime(2026, 3, 15, 11, 0, tzinfo=datetime.UTC)
CARDS = parse_rate_cards(
    [{"effective_month": "2026-01", "currency": "EUR", "services": {"hr": {"unit_price": "0.001"}}}]
)


@contextlib.contextmanager
def calling_as(service):
    token = CURRENT_CALLER.set(Caller(service, f"spiffe://test/svc/{service}", service))
    try:
        yield
    finally:
        CURRENT_CALLER.reset(token)


def timestamp(moment: datetime.datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def record(record_id, *, callee="hr", calls=2, minute=MARCH, **fields):
    values = {
        "record_id": record_id,
        "caller": "reimbursement",
        "callee": callee,
        "method": GET,
        "status_class": pb.STATUS_CLASS_OK,
        "minute": timestamp(minute),
        "calls": calls,
        "cost_units": calls,
    }
    values.update(fields)
    return pb.UsageRecord(**values)


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock(NOW)


@pytest.fixture
def ledger(tmp_path, clock):
    store = UsageStore(tmp_path / "metering.db")
    cards = {"now": CARDS}
    servicer = UsageLedgerServicer(store, lambda: cards["now"], now=clock)
    servicer.cards = cards  # the test changes the cards in force through it
    yield servicer
    store.close()


def report(ledger, *records, as_="hr"):
    with calling_as(as_):
        return ledger.ReportUsage(pb.ReportUsageRequest(records=records), None)


def statement(ledger, month, *, department="reimbursement", as_="reimbursement"):
    with calling_as(as_):
        request = pb.GetStatementRequest(department=department, month=month)
        return ledger.GetStatement(request, None).statement


class TestReportUsage:
    def test_a_batch_is_recorded_and_its_redelivery_is_acknowledged(self, ledger):
        """The first delivery records; the same batch again is all duplicates."""
        batch = (record("hr-1/1/1"), record("hr-1/1/2"))
        assert report(ledger, *batch) == pb.ReportUsageResponse(recorded=2)
        assert report(ledger, *batch) == pb.ReportUsageResponse(duplicates=2)

    def test_every_bad_field_is_named_and_nothing_is_recorded(self, ledger):
        """A malformed record refuses the batch with a violation per bad field."""
        bad = pb.UsageRecord(
            record_id="",
            caller="",
            callee="hr",
            method="GetEmployee",
            minute=Timestamp(seconds=1_790_000_001),
            calls=0,
            cost_units=-1,
        )
        with pytest.raises(InvalidArgument) as refused:
            report(ledger, record("hr-1/1/1"), bad)
        assert {v.field for v in refused.value.violations} == {
            "records[1].record_id",
            "records[1].caller",
            "records[1].method",
            "records[1].status_class",
            "records[1].minute",
            "records[1].calls",
            "records[1].cost_units",
        }
        assert report(ledger, record("hr-1/1/1")).recorded == 1

    def test_more_units_than_calls_can_cost_are_refused(self, ledger):
        """cost_units above calls x the largest quota_cost is a bad field."""
        with pytest.raises(InvalidArgument) as refused:
            report(ledger, record("r", calls=1, cost_units=2**33))
        assert [v.field for v in refused.value.violations] == ["records[0].cost_units"]

    def test_a_minute_in_the_future_is_refused(self, ledger):
        """A record of a minute that has not come yet is a bad field."""
        later = NOW + datetime.timedelta(hours=2)
        with pytest.raises(InvalidArgument) as refused:
            report(ledger, record("r", minute=later.replace(second=0)))
        assert [v.field for v in refused.value.violations] == ["records[0].minute"]

    def test_a_batch_over_the_limit_is_refused(self, ledger):
        """More than 5,000 records in a batch: INVALID_ARGUMENT on records."""
        with pytest.raises(InvalidArgument) as refused:
            report(ledger, *(record(f"r{n}") for n in range(5001)))
        assert [v.field for v in refused.value.violations] == ["records"]

    def test_usage_of_another_callee_is_refused(self, ledger):
        """finance may not report hr's usage: PERMISSION_DENIED NOT_THE_CALLEE, nothing kept."""
        with pytest.raises(PermissionDenied) as refused:
            report(ledger, record("f/1", callee="finance"), record("h/1"), as_="finance")
        assert refused.value.reason == "NOT_THE_CALLEE"
        assert report(ledger, record("f/1", callee="finance"), as_="finance").recorded == 1


class TestQueryUsage:
    def test_a_department_reads_its_usage_as_caller(self, ledger):
        """Reimbursement sees its calls to hr, summed."""
        report(ledger, record("1", calls=2), record("2", calls=3))
        with calling_as("reimbursement"):
            response = ledger.QueryUsage(
                pb.QueryUsageRequest(
                    department="reimbursement", start_time=timestamp(MARCH.replace(hour=0))
                ),
                None,
            )
        [usage] = response.usage
        assert (usage.caller, usage.callee, usage.method, usage.calls) == (
            "reimbursement",
            "hr",
            GET,
            5,
        )

    @pytest.mark.parametrize("reader", ["platform", "hr"])
    def test_the_platform_and_the_callee_read_it_too(self, ledger, reader):
        """The platform reads anyone's usage; hr reads its own, as the callee."""
        report(ledger, record("1"))
        with calling_as(reader):
            response = ledger.QueryUsage(
                pb.QueryUsageRequest(
                    department=reader if reader == "hr" else "reimbursement",
                    start_time=timestamp(FEBRUARY),
                ),
                None,
            )
        assert [u.calls for u in response.usage] == [2]

    def test_another_departments_usage_is_refused(self, ledger):
        """finance may not read reimbursement's usage: PERMISSION_DENIED NOT_YOUR_USAGE."""
        with calling_as("finance"), pytest.raises(PermissionDenied) as refused:
            ledger.QueryUsage(
                pb.QueryUsageRequest(department="reimbursement", start_time=timestamp(FEBRUARY)),
                None,
            )
        assert refused.value.reason == "NOT_YOUR_USAGE"

    def test_an_empty_or_too_long_range_is_refused(self, ledger):
        """No start, an end before the start, or over 400 days: INVALID_ARGUMENT."""
        requests = [
            pb.QueryUsageRequest(department="hr"),
            pb.QueryUsageRequest(
                department="hr", start_time=timestamp(MARCH), end_time=timestamp(FEBRUARY)
            ),
            pb.QueryUsageRequest(
                department="hr",
                start_time=timestamp(MARCH - datetime.timedelta(days=401)),
                end_time=timestamp(MARCH),
            ),
        ]
        with calling_as("hr"):
            for request in requests:
                with pytest.raises(InvalidArgument):
                    ledger.QueryUsage(request, None)


class TestGetStatement:
    def test_the_current_month_is_month_to_date(self, ledger, clock):
        """This month's statement is open and grows with the usage reported."""
        report(ledger, record("1", calls=100))
        first = statement(ledger, "2026-03")
        assert (first.closed, first.total.nanos) == (False, 100_000_000)
        report(ledger, record("2", calls=50))
        assert statement(ledger, "2026-03").total.nanos == 150_000_000

    def test_a_closed_month_returns_the_same_bytes_every_time(self, ledger, clock):
        """The first statement after the month ended is kept: late usage, a new card and a
        later clock change nothing of it, byte for byte."""
        report(ledger, record("1", calls=100, minute=FEBRUARY))
        first = statement(ledger, "2026-02")
        assert first.closed
        report(ledger, record("2", calls=100, minute=FEBRUARY))
        ledger.cards["now"] = RateCards()
        clock.now = NOW + datetime.timedelta(days=3)
        again = statement(ledger, "2026-02")
        assert again.SerializeToString(deterministic=True) == first.SerializeToString(
            deterministic=True
        )
        assert again.total.nanos == 100_000_000

    def test_the_platform_reads_any_statement_and_others_none(self, ledger):
        """platform may read reimbursement's statement; hr may not (NOT_YOUR_USAGE)."""
        assert statement(ledger, "2026-03", as_="platform").department == "reimbursement"
        with pytest.raises(PermissionDenied) as refused:
            statement(ledger, "2026-03", as_="hr")
        assert refused.value.reason == "NOT_YOUR_USAGE"

    @pytest.mark.parametrize("month", ["2026-04", "2026-3", "2026-13", "march", ""])
    def test_a_future_or_malformed_month_is_refused(self, ledger, month):
        """A month after this one, or not YYYY-MM: INVALID_ARGUMENT on month."""
        with pytest.raises(InvalidArgument) as refused:
            statement(ledger, month)
        assert [v.field for v in refused.value.violations] == ["month"]

    def test_a_month_before_every_card_has_no_rate_card(self, ledger):
        """No card in force that month: FAILED_PRECONDITION NO_RATE_CARD, and nothing kept."""
        with pytest.raises(FailedPrecondition) as refused:
            statement(ledger, "2025-12")
        assert refused.value.reason == "NO_RATE_CARD"
