"""Departments on either database through the host: `--db postgresql://...` serves, and a
database held by another replica is UNAVAILABLE to callers, who retry, never INTERNAL."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from deptmesh.common.v1 import money_pb2
from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.reimbursement.v1 import reimbursement_pb2, reimbursement_pb2_grpc
from deptmesh.services.finance.app import FINANCE
from deptmesh.services.hr.app import HR
from deptmesh.services.reimbursement.app import REIMBURSEMENT
from deptmesh.sidecar.host import parse_options
from tests.databases import RawConnection
from tests.rpc_errors import error_reason, rpc_error

EUR_100 = money_pb2.Money(currency_code="EUR", units=100)


class Finance:
    def __init__(self, start_service, db) -> None:
        running = start_service(FINANCE, flags=["--db", str(db)])
        self.budgets = finance_pb2_grpc.BudgetServiceStub(running.channel)
        self.payments = finance_pb2_grpc.PaymentServiceStub(running.channel)

    def reserve(self, key: str) -> str:
        request = finance_pb2.ReserveFundsRequest(
            idempotency_key=key, cost_center_id="CC-ENG", amount=EUR_100
        )
        return self.budgets.ReserveFunds(request, timeout=5).reservation.reservation_id

    @staticmethod
    def payout_request(key: str, reservation_id: str) -> finance_pb2.PayoutRequest:
        return finance_pb2.PayoutRequest(
            idempotency_key=key,
            reservation_id=reservation_id,
            payee_employee_id="E1002",
            amount=EUR_100,
            memo="claim",
        )

    def ledger(self) -> list[finance_pb2.LedgerEntry]:
        request = finance_pb2.ListLedgerEntriesRequest(cost_center_id="CC-ENG")
        return list(self.payments.ListLedgerEntries(request, timeout=5).entries)


class TestFinanceOnPostgres:
    def test_serves_and_pays_concurrent_copies_once(self, start_service, postgres_url):
        """Finance started with --db postgresql://... seeds its budgets and serves; twenty
        simultaneous Payouts with one key make one payout and one ledger entry."""
        finance = Finance(start_service, postgres_url)
        budget = finance.budgets.GetBudget(
            finance_pb2.GetBudgetRequest(cost_center_id="CC-ENG"), timeout=5
        ).budget
        assert budget.allocated.units == 50_000
        request = finance.payout_request("claim-1", finance.reserve("claim-1"))
        barrier = threading.Barrier(20)

        def pay(_: int) -> str:
            barrier.wait(timeout=10)
            return finance.payments.Payout(request, timeout=10).payout.payout_id

        with ThreadPoolExecutor(20) as pool:
            payout_ids = set(pool.map(pay, range(20)))

        assert len(payout_ids) == 1
        assert [entry.payout_id for entry in finance.ledger()] == list(payout_ids)


class TestHeldDatabase:
    def test_a_payout_waiting_for_a_held_lock_is_unavailable_before_its_deadline(
        self, start_service, database_target
    ):
        """While another replica holds the lock a Payout needs, the call ends UNAVAILABLE
        (DATABASE_BUSY), not INTERNAL, before its deadline; once the lock is gone, the same
        request pays."""
        finance = Finance(start_service, database_target)
        request = finance.payout_request("claim-1", finance.reserve("claim-1"))
        other_replica = RawConnection(database_target)
        other_replica.hold_write_lock("payouts")
        try:
            started = time.monotonic()
            error = rpc_error(lambda: finance.payments.Payout(request, timeout=2))
            took = time.monotonic() - started
        finally:
            other_replica.rollback()
            other_replica.close()

        assert (error.code(), error_reason(error)) == (
            grpc.StatusCode.UNAVAILABLE,
            "DATABASE_BUSY",
        )
        assert took < 2
        assert finance.payments.Payout(request, timeout=5).payout.payout_id
        assert len(finance.ledger()) == 1


class TestReimbursementWithABusyFinance:
    def test_an_approved_claim_is_paid_once_finance_can_write_again(
        self, start_service, postgres_url
    ):
        """Finance's payouts held by another replica: approval still reserves and records
        APPROVED (the payout is deferred, not refused), and the retrier pays it, once,
        after the lock is released."""
        start_service(HR)
        finance = Finance(start_service, postgres_url)
        running = start_service(REIMBURSEMENT, flags=["--payout-retry-seconds", "0.1"])
        claims = reimbursement_pb2_grpc.ReimbursementServiceStub(running.channel)
        claim = claims.SubmitClaim(
            reimbursement_pb2.SubmitClaimRequest(
                employee_id="E1002", amount=EUR_100, description="Train to a conference"
            ),
            timeout=5,
        ).claim
        other_replica = RawConnection(postgres_url)
        other_replica.hold_write_lock("payouts")
        try:
            approved = claims.ApproveClaim(
                reimbursement_pb2.ApproveClaimRequest(claim_id=claim.claim_id, approver_id="E1001"),
                timeout=15,
            ).claim
        finally:
            other_replica.rollback()
            other_replica.close()
        assert approved.state == reimbursement_pb2.CLAIM_STATE_APPROVED

        deadline = time.monotonic() + 15
        request = reimbursement_pb2.GetClaimRequest(claim_id=claim.claim_id)
        while claims.GetClaim(request, timeout=5).claim.state != reimbursement_pb2.CLAIM_STATE_PAID:
            assert time.monotonic() < deadline, "the retrier did not pay the approved claim"
            time.sleep(0.05)
        assert len(finance.ledger()) == 1


class TestDbFlag:
    def test_a_postgres_url_is_kept_as_a_url(self, tmp_path):
        """--db postgresql://... reaches the department as the URL; anything else is a path."""
        url = "postgresql://finance@db.internal:5432/finance?sslmode=require"
        assert parse_options(FINANCE, ["--db", url]).db == url
        assert parse_options(FINANCE, ["--db", str(tmp_path / "f.db")]).db == tmp_path / "f.db"

    @pytest.mark.parametrize(
        "url", ["postgresql://finance:secret@db/finance", "postgres://db/finance?password=secret"]
    )
    def test_a_url_with_a_password_is_refused(self, url, capsys):
        """A password on the command line is refused (status 2): it belongs in PGPASSWORD
        or ~/.pgpass."""
        with pytest.raises(SystemExit) as exited:
            parse_options(FINANCE, ["--db", url])
        assert exited.value.code == 2
        assert "PGPASSWORD" in capsys.readouterr().err
