"""Several replicas of a department on one database, all given copies of a request at once:
each store's once-per-key guarantee holds, on SQLite (replicas on one host sharing the file)
and on PostgreSQL (replicas on several hosts)."""

from __future__ import annotations

import datetime
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from deptmesh.services.finance import demo_data as finance_demo_data
from deptmesh.services.finance.records import NewPayout, NewReservation
from deptmesh.services.finance.store import FinanceStore
from deptmesh.services.hr import demo_data as hr_demo_data
from deptmesh.services.hr.store import HrStore
from deptmesh.services.money import NANOS_PER_UNIT, Amount
from deptmesh.services.pagination import Page
from deptmesh.services.reimbursement.store import ClaimStore, NewClaim
from deptmesh.services.travel.store import TripRequest, TripStore
from deptmesh.sidecar.errors import AlreadyExists, FailedPrecondition

REPLICAS = 8
EUR_100 = Amount("EUR", 100 * NANOS_PER_UNIT)


def at_once(replicas, action):
    """action(replica) on every replica together; each outcome, a value or the error raised."""
    start = threading.Barrier(len(replicas))

    def run(replica):
        start.wait(timeout=10)
        try:
            return action(replica)
        except (AlreadyExists, FailedPrecondition) as error:
            return error

    with ThreadPoolExecutor(len(replicas)) as pool:
        return list(pool.map(run, replicas))


@pytest.fixture
def open_replicas(database_target):
    opened = []

    def open_(store_type):
        replicas = [store_type(database_target) for _ in range(REPLICAS)]
        opened.extend(replicas)
        return replicas

    yield open_
    for store in opened:
        store.close()


@pytest.fixture
def finance(open_replicas):
    replicas = open_replicas(FinanceStore)
    replicas[0].add_budget("CC-ENG", Amount("EUR", 1000 * NANOS_PER_UNIT))
    return replicas


def payout(reservation_id, key="claim-1"):
    return NewPayout("reimbursement", key, reservation_id, "E1002", EUR_100, "claim")


class TestFinanceReplicas:
    def test_copies_of_a_payout_pay_once(self, finance):
        """Every replica paying with one (caller, key): one payout, one ledger entry, the
        budget spent once, and every caller gets that payout."""
        reservation = finance[0].reserve(NewReservation("reimbursement", "k", "CC-ENG", EUR_100))

        outcomes = at_once(finance, lambda store: store.pay(payout(reservation.reservation_id)))

        assert len({result.payout_id for result in outcomes}) == 1
        [entry] = finance[0].list_ledger_entries(Page(100, None), "")
        assert entry.payout_id == outcomes[0].payout_id
        budget = finance[0].get_budget("CC-ENG")
        assert (budget.spent, budget.reserved) == (EUR_100, Amount("EUR", 0))

    def test_copies_of_a_reservation_hold_once(self, finance):
        """Every replica reserving with one (caller, key): one reservation, held once."""
        request = NewReservation("reimbursement", "claim-1", "CC-ENG", EUR_100)

        outcomes = at_once(finance, lambda store: store.reserve(request))

        assert len({result.reservation_id for result in outcomes}) == 1
        assert finance[0].get_budget("CC-ENG").reserved == EUR_100

    def test_one_key_for_different_payouts_pays_one_of_them(self, finance):
        """One key sent with a different reservation by each replica: one is paid, every
        other is refused as a reused key, and the ledger has one entry."""
        reservations = [
            finance[0].reserve(NewReservation("reimbursement", f"r{n}", "CC-ENG", EUR_100))
            for n in range(REPLICAS)
        ]
        by_replica = dict(zip(map(id, finance), reservations, strict=True))

        outcomes = at_once(
            finance, lambda store: store.pay(payout(by_replica[id(store)].reservation_id))
        )

        paid = [result for result in outcomes if not isinstance(result, Exception)]
        refused = [result for result in outcomes if isinstance(result, AlreadyExists)]
        assert (len(paid), len(refused)) == (1, REPLICAS - 1)
        assert len(finance[0].list_ledger_entries(Page(100, None), "")) == 1

    def test_different_keys_spend_a_reservation_once(self, finance):
        """Each replica paying one reservation under its own key: one payout; the others
        find the reservation spent."""
        reservation = finance[0].reserve(NewReservation("reimbursement", "k", "CC-ENG", EUR_100))
        keys = {id(store): f"key-{n}" for n, store in enumerate(finance)}

        outcomes = at_once(
            finance, lambda store: store.pay(payout(reservation.reservation_id, keys[id(store)]))
        )

        reasons = sorted(getattr(result, "reason", "paid") for result in outcomes)
        assert reasons == ["RESERVATION_CONSUMED"] * (REPLICAS - 1) + ["paid"]
        assert finance[0].get_budget("CC-ENG").spent == EUR_100


class TestClaimReplicas:
    def test_copies_of_a_claim_file_one(self, open_replicas):
        """Every replica filing one (caller, request_id): one claim, returned to all."""
        replicas = open_replicas(ClaimStore)
        claim = NewClaim("E1002", EUR_100, "Train")

        outcomes = at_once(replicas, lambda store: store.submit("web", "r1", claim))

        assert len({result.claim_id for result in outcomes}) == 1
        assert len(replicas[0].page(Page(100, None), "", None)) == 1

    def test_concurrent_approvals_approve_once(self, open_replicas):
        """Every replica approving one claim at once: exactly one succeeds."""
        replicas = open_replicas(ClaimStore)
        claim = replicas[0].submit("web", "", NewClaim("E1002", EUR_100, "Train"))

        outcomes = at_once(
            replicas, lambda store: store.approve(claim.claim_id, "E1001", f"rsv_{id(store)}")
        )

        approved = [result for result in outcomes if not isinstance(result, Exception)]
        assert len(approved) == 1
        assert replicas[0].get(claim.claim_id) == approved[0]


class TestTripReplicas:
    def test_copies_of_a_trip_file_one(self, open_replicas):
        """Every replica filing one (caller, request_id): one trip, returned to all."""
        replicas = open_replicas(TripStore)
        request = TripRequest(
            "E1002",
            "Lisbon, Portugal",
            "PyCon",
            datetime.date(2031, 5, 4),
            datetime.date(2031, 5, 8),
            EUR_100,
        )

        outcomes = at_once(replicas, lambda store: store.file("desk", "r1", request, "CC-ENG"))

        assert len({result.trip_id for result in outcomes}) == 1
        assert len(replicas[0].page(Page(100, None), "")) == 1


class TestSeedingReplicas:
    """Replicas started together on a new database each load the demo data: it is loaded
    once and no replica fails to start."""

    def test_finance_budgets_loaded_once(self, open_replicas):
        replicas = open_replicas(FinanceStore)
        outcomes = at_once(replicas, finance_demo_data.seed)
        assert outcomes == [None] * REPLICAS
        assert replicas[0].get_budget("CC-ENG").allocated == finance_demo_data.BUDGETS["CC-ENG"]

    def test_hr_company_loaded_once(self, open_replicas):
        replicas = open_replicas(HrStore)
        outcomes = at_once(replicas, hr_demo_data.seed)
        assert outcomes == [None] * REPLICAS
        listed = replicas[0].list_employees(Page(size=100, after=""), cost_center_id="")
        assert [e.employee_id for e in listed] == ["E1000", "E1001", "E1002", "E1003", "E1004"]
