"""The ledger's store on SQLite and PostgreSQL: each record_id counted once, a reused id
refused with nothing recorded, sums by the database."""

from __future__ import annotations

import pytest

from deptmesh.services.metering.months import Month
from deptmesh.services.metering.store import UsageEntry, UsageStore
from deptmesh.sidecar.errors import AlreadyExists

GET = "/deptmesh.hr.v1.EmployeeService/GetEmployee"
LIST = "/deptmesh.hr.v1.EmployeeService/ListEmployees"
SEPTEMBER = Month(2026, 9)
MINUTE = SEPTEMBER.start_seconds + 3 * 86400  # a minute's start in September 2026
OK, CLIENT_ERROR, SERVER_ERROR, THROTTLED, DENIED = 1, 2, 3, 4, 5


def entry(
    record_id,
    *,
    caller="reimbursement",
    callee="hr",
    method=GET,
    status=OK,
    calls=2,
    units=None,
    minute=MINUTE,
):
    return UsageEntry(
        record_id,
        caller,
        callee,
        method,
        status,
        minute,
        calls,
        calls if units is None else units,
        10 * calls,
        20 * calls,
        1000 * calls,
    )


@pytest.fixture
def store(database_target):
    store = UsageStore(database_target)
    yield store
    store.close()


class TestRecording:
    def test_a_new_batch_is_recorded(self, store):
        """Every record of a new batch is recorded, none is a duplicate."""
        assert store.record([entry("a/1/1"), entry("a/1/2")]) == (2, 0)

    def test_a_redelivered_batch_changes_nothing(self, store):
        """The same batch again is all duplicates, and the sums count it once."""
        batch = [entry("a/1/1", calls=3), entry("a/1/2", method=LIST, calls=4)]
        store.record(batch)
        assert store.record(batch) == (0, 2)
        assert store.billable_units("reimbursement", SEPTEMBER.start_seconds) == {
            ("hr", GET): 3,
            ("hr", LIST): 4,
        }

    def test_a_batch_partly_seen_records_only_the_new_ones(self, store):
        """Records seen before are duplicates; the others are recorded."""
        store.record([entry("a/1/1")])
        assert store.record([entry("a/1/1"), entry("a/1/2")]) == (1, 1)

    def test_a_copy_within_one_batch_is_a_duplicate(self, store):
        """The same record twice in a batch is counted once."""
        assert store.record([entry("a/1/1"), entry("a/1/1")]) == (1, 1)

    def test_a_reused_id_refuses_the_whole_batch(self, store):
        """An id recorded before with other counts: ALREADY_EXISTS RECORD_ID_REUSED, and
        the batch's new records are not recorded either."""
        store.record([entry("a/1/1", calls=2)])
        with pytest.raises(AlreadyExists) as refused:
            store.record([entry("a/1/2", calls=5), entry("a/1/1", calls=3)])
        assert refused.value.reason == "RECORD_ID_REUSED"
        assert refused.value.metadata == {"record_id": "a/1/1"}
        assert store.billable_units("reimbursement", SEPTEMBER.start_seconds) == {("hr", GET): 2}

    def test_a_reused_id_within_one_batch_is_refused(self, store):
        """Two records of one batch with one id and different counts record nothing."""
        with pytest.raises(AlreadyExists):
            store.record([entry("a/1/1", calls=2), entry("a/1/1", calls=3)])
        assert store.record([entry("a/1/1", calls=3)]) == (1, 0)

    def test_a_large_batch_spans_several_inserts(self, store):
        """A batch of 2500 records (several multi-row inserts) is recorded whole."""
        batch = [entry(f"a/1/{n}", calls=1) for n in range(2500)]
        assert store.record(batch) == (2500, 0)
        assert store.record(batch) == (0, 2500)
        assert store.billable_units("reimbursement", SEPTEMBER.start_seconds) == {("hr", GET): 2500}


class TestSums:
    def test_billable_units_are_ok_calls_of_the_caller_in_the_month(self, store):
        """Only OK calls of the paying caller within the month are billable."""
        store.record(
            [
                entry("1", calls=2, units=10),
                entry("2", status=SERVER_ERROR, calls=1, units=5),
                entry("3", status=THROTTLED, calls=1, units=5),
                entry("4", caller="finance", calls=7),
                entry("5", minute=SEPTEMBER.end_seconds, calls=9),
                entry("6", minute=SEPTEMBER.start_seconds - 60, calls=11),
                entry("7", minute=SEPTEMBER.end_seconds - 60, calls=1),
            ]
        )
        assert store.billable_units("reimbursement", SEPTEMBER.start_seconds) == {("hr", GET): 11}

    def test_usage_sums_per_caller_callee_and_method(self, store):
        """A department's usage as caller and as callee, with errors, throttles and denials."""
        store.record(
            [
                entry("1", calls=2),
                entry("2", status=CLIENT_ERROR, calls=1),
                entry("3", status=SERVER_ERROR, calls=1),
                entry("4", status=THROTTLED, calls=3),
                entry("5", status=DENIED, calls=4),
                entry("6", caller="hr", callee="finance", method="/x.v1.S/M", calls=5),
                entry("7", caller="travel", calls=6),
            ]
        )
        [mine] = store.usage("reimbursement", MINUTE, MINUTE + 60)
        assert (mine.caller, mine.callee, mine.method) == ("reimbursement", "hr", GET)
        assert (mine.calls, mine.cost_units) == (11, 11)
        assert (mine.errors, mine.throttled, mine.denied) == (2, 3, 4)
        assert (mine.request_bytes, mine.response_bytes, mine.latency_sum_micros) == (
            110,
            220,
            11_000,
        )
        as_hr = store.usage("hr", MINUTE, MINUTE + 60)
        assert [(u.caller, u.callee, u.calls) for u in as_hr] == [
            ("hr", "finance", 5),
            ("reimbursement", "hr", 11),
            ("travel", "hr", 6),
        ]

    def test_a_department_calling_itself_is_counted_once(self, store):
        """Usage where the department is both caller and callee is not summed twice."""
        store.record([entry("1", caller="hr", callee="hr", calls=3)])
        [own] = store.usage("hr", MINUTE, MINUTE + 60)
        assert own.calls == 3


class TestClosedStatements:
    def test_the_first_statement_kept_stays(self, store):
        """A second statement for a kept month is not kept: the first one is returned."""
        assert store.closed_statement("hr", "2026-01") is None
        assert store.keep_closed_statement("hr", "2026-01", b"\x00first") == b"\x00first"
        assert store.keep_closed_statement("hr", "2026-01", b"second") == b"\x00first"
        assert store.closed_statement("hr", "2026-01") == b"\x00first"
        assert store.closed_statement("hr", "2026-02") is None
