"""The claim flow through real HR, finance and reimbursement servers on port 0."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest

from deptmesh.common.v1 import money_pb2
from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.reimbursement.v1 import reimbursement_pb2 as pb
from deptmesh.reimbursement.v1 import reimbursement_pb2_grpc
from deptmesh.services.finance.app import FINANCE
from deptmesh.services.hr.app import HR
from deptmesh.services.money import Amount
from deptmesh.services.reimbursement.app import REIMBURSEMENT
from deptmesh.services.reimbursement.store import ClaimStore, NewClaim
from tests.rpc_errors import bad_request_fields, error_reason, rpc_error

CLAIMANT, PEER, MANAGER = "E1002", "E1003", "E1001"
EUR_42_50 = money_pb2.Money(currency_code="EUR", units=42, nanos=500_000_000)


class Company:
    """The three departments, and stubs to talk to them as a test client."""

    def __init__(self, start_service, *, retry_seconds: float = 60.0) -> None:
        self.hr = start_service(HR)
        self.finance = start_service(FINANCE)
        self.start_service = start_service
        self.reimbursement = self.start_reimbursement(retry_seconds)
        self.payments = finance_pb2_grpc.PaymentServiceStub(self.finance.channel)
        self.budgets = finance_pb2_grpc.BudgetServiceStub(self.finance.channel)

    def start_reimbursement(self, retry_seconds: float):
        running = self.start_service(
            REIMBURSEMENT, flags=["--payout-retry-seconds", str(retry_seconds)]
        )
        self.claims = reimbursement_pb2_grpc.ReimbursementServiceStub(running.channel)
        return running

    def submit(self, amount: money_pb2.Money = EUR_42_50, employee_id: str = CLAIMANT) -> pb.Claim:
        request = pb.SubmitClaimRequest(
            employee_id=employee_id, amount=amount, description="Train to a conference"
        )
        return self.claims.SubmitClaim(request, timeout=5).claim

    def approve(self, claim_id: str, approver_id: str = MANAGER) -> pb.Claim:
        request = pb.ApproveClaimRequest(claim_id=claim_id, approver_id=approver_id)
        return self.claims.ApproveClaim(request, timeout=5).claim

    def ledger(self) -> list[finance_pb2.LedgerEntry]:
        request = finance_pb2.ListLedgerEntriesRequest(cost_center_id="CC-ENG")
        return list(self.payments.ListLedgerEntries(request, timeout=5).entries)

    def budget(self) -> finance_pb2.Budget:
        request = finance_pb2.GetBudgetRequest(cost_center_id="CC-ENG")
        return self.budgets.GetBudget(request, timeout=5).budget


@pytest.fixture
def company(start_service) -> Company:
    return Company(start_service)


class TestClaimFlow:
    def test_claim_goes_from_submitted_to_paid_with_one_ledger_entry(self, company):
        """A claim approved by the claimant's manager is paid once and recorded by finance."""
        submitted = company.submit()
        assert submitted.state == pb.CLAIM_STATE_SUBMITTED

        paid = company.approve(submitted.claim_id)

        assert paid.state == pb.CLAIM_STATE_PAID
        assert paid.decided_by == MANAGER
        assert paid.reservation_id
        assert paid.payout_id
        [entry] = company.ledger()
        assert entry.payout_id == paid.payout_id
        assert Amount.from_proto(entry.amount) == Amount.from_proto(EUR_42_50)
        assert Amount.from_proto(company.budget().spent) == Amount.from_proto(EUR_42_50)
        fetched = company.claims.GetClaim(pb.GetClaimRequest(claim_id=paid.claim_id), timeout=5)
        assert fetched.claim == paid

    def test_rejected_claim_is_final_and_pays_nothing(self, company):
        """A rejected claim records why, cannot be approved afterwards and moves no money."""
        claim = company.submit()
        request = pb.RejectClaimRequest(
            claim_id=claim.claim_id, approver_id=MANAGER, reason="No receipt"
        )
        rejected = company.claims.RejectClaim(request, timeout=5).claim
        assert rejected.state == pb.CLAIM_STATE_REJECTED
        assert rejected.rejection_reason == "No receipt"

        error = rpc_error(company.approve, claim.claim_id)
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(error) == "CLAIM_NOT_SUBMITTED"
        assert company.ledger() == []

    def test_submit_with_request_id_is_idempotent(self, company):
        """The same request_id and request returns the original claim; a different one fails."""
        request = pb.SubmitClaimRequest(
            employee_id=CLAIMANT, amount=EUR_42_50, description="Taxi", request_id="req-1"
        )
        first = company.claims.SubmitClaim(request, timeout=5).claim
        again = company.claims.SubmitClaim(request, timeout=5).claim
        assert again.claim_id == first.claim_id

        request.description = "Something else"
        error = rpc_error(company.claims.SubmitClaim, request)
        assert error.code() is grpc.StatusCode.ALREADY_EXISTS
        assert error_reason(error) == "IDEMPOTENCY_KEY_REUSED"

    def test_list_claims_pages_newest_first(self, company):
        """ListClaims returns every claim once, newest first, across pages."""
        ids = [company.submit().claim_id for _ in range(5)]
        seen: list[str] = []
        token = ""
        while True:
            request = pb.ListClaimsRequest(page_size=2, page_token=token, employee_id=CLAIMANT)
            response = company.claims.ListClaims(request, timeout=5)
            seen += [c.claim_id for c in response.claims]
            token = response.next_page_token
            if not token:
                break
        assert seen == list(reversed(ids))


class TestBadInput:
    @pytest.mark.parametrize(
        ("amount", "field"),
        [
            (money_pb2.Money(currency_code="EUR", units=-5), "amount"),
            (money_pb2.Money(currency_code="EUR"), "amount"),
            (money_pb2.Money(currency_code="EUR", units=1, nanos=1_000_000_000), "amount.nanos"),
            (money_pb2.Money(currency_code="EUR", units=1, nanos=-5), "amount.nanos"),
            (money_pb2.Money(currency_code="XYZ", units=1), "amount.currency_code"),
            (money_pb2.Money(currency_code="eur", units=1), "amount.currency_code"),
        ],
    )
    def test_malformed_amount_is_invalid_argument(self, company, amount, field):
        """Negative, zero, malformed or unknown-currency amounts name the bad field."""
        error = rpc_error(company.submit, amount)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert field in bad_request_fields(error)

    def test_missing_fields_are_all_named(self, company):
        """An empty request is rejected with a violation for every required field."""
        error = rpc_error(company.claims.SubmitClaim, pb.SubmitClaimRequest())
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert set(bad_request_fields(error)) == {"employee_id", "amount", "description"}

    def test_unknown_employee_is_refused_and_files_nothing(self, company):
        """A claim for an employee HR does not know is refused and not stored."""
        error = rpc_error(company.submit, EUR_42_50, "E9999")
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(error) == "EMPLOYEE_NOT_FOUND"
        listed = company.claims.ListClaims(pb.ListClaimsRequest(), timeout=5)
        assert list(listed.claims) == []

    def test_approval_by_someone_other_than_the_manager_is_denied(self, company):
        """Only the claimant's manager may approve; the claim stays SUBMITTED, nothing reserved."""
        claim = company.submit()
        error = rpc_error(company.approve, claim.claim_id, PEER)
        assert error.code() is grpc.StatusCode.PERMISSION_DENIED
        assert error_reason(error) == "NOT_THE_MANAGER"
        fetched = company.claims.GetClaim(pb.GetClaimRequest(claim_id=claim.claim_id), timeout=5)
        assert fetched.claim.state == pb.CLAIM_STATE_SUBMITTED
        assert Amount.from_proto(company.budget().reserved).nanos == 0

    def test_approving_twice_is_refused_and_pays_once(self, company):
        """A second approval of a paid claim fails with CLAIM_NOT_SUBMITTED; one ledger entry."""
        claim = company.submit()
        company.approve(claim.claim_id)
        error = rpc_error(company.approve, claim.claim_id)
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(error) == "CLAIM_NOT_SUBMITTED"
        assert len(company.ledger()) == 1

    def test_claim_larger_than_the_budget_is_refused(self, company):
        """A claim the cost centre cannot cover fails with INSUFFICIENT_FUNDS and stays open."""
        claim = company.submit(money_pb2.Money(currency_code="EUR", units=60_000))
        error = rpc_error(company.approve, claim.claim_id)
        assert error.code() is grpc.StatusCode.FAILED_PRECONDITION
        assert error_reason(error) == "INSUFFICIENT_FUNDS"
        fetched = company.claims.GetClaim(pb.GetClaimRequest(claim_id=claim.claim_id), timeout=5)
        assert fetched.claim.state == pb.CLAIM_STATE_SUBMITTED

    def test_malformed_claim_id_is_invalid_argument(self, company):
        """Ids with characters outside the allowed set are rejected before any lookup."""
        error = rpc_error(company.approve, "../etc/passwd", MANAGER)
        assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert "claim_id" in bad_request_fields(error)


class TestPayoutOnce:
    def test_concurrent_approvals_pay_once(self, company):
        """Ten simultaneous approvals of one claim: one succeeds, finance pays once."""
        claim = company.submit()
        barrier = threading.Barrier(10)

        def approve() -> grpc.StatusCode:
            barrier.wait()
            try:
                company.approve(claim.claim_id)
            except grpc.RpcError as error:
                return error.code()
            return grpc.StatusCode.OK

        with ThreadPoolExecutor(10) as pool:
            codes = list(pool.map(lambda _: approve(), range(10)))
        assert codes.count(grpc.StatusCode.OK) == 1
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.FAILED_PRECONDITION}
        assert len(company.ledger()) == 1

    def test_approved_claim_left_unpaid_is_paid_by_the_retrier(self, start_service, tmp_path):
        """A claim APPROVED before a crash is paid after restart, exactly once."""
        company = Company(start_service, retry_seconds=0.05)
        submitted = company.submit()
        company.reimbursement.channel.close()
        company.reimbursement.hosted.drain()

        # The state a crash between approval and payout leaves behind.
        reservation = company.budgets.ReserveFunds(
            finance_pb2.ReserveFundsRequest(
                idempotency_key=submitted.claim_id,
                cost_center_id="CC-ENG",
                amount=EUR_42_50,
            ),
            timeout=5,
        ).reservation
        store = ClaimStore(tmp_path / "reimbursement.db")
        store.approve(submitted.claim_id, MANAGER, reservation.reservation_id)
        store.close()

        company.start_reimbursement(retry_seconds=0.05)
        deadline = time.monotonic() + 10
        request = pb.GetClaimRequest(claim_id=submitted.claim_id)
        while company.claims.GetClaim(request, timeout=5).claim.state != pb.CLAIM_STATE_PAID:
            assert time.monotonic() < deadline, "the retrier did not pay the approved claim"
            time.sleep(0.02)
        assert len(company.ledger()) == 1


def test_new_claim_fingerprint_depends_on_every_field():
    """Requests differing in any field have different fingerprints."""
    base = NewClaim(CLAIMANT, Amount("EUR", 1), "x")
    variants = [
        NewClaim("E1003", Amount("EUR", 1), "x"),
        NewClaim(CLAIMANT, Amount("USD", 1), "x"),
        NewClaim(CLAIMANT, Amount("EUR", 2), "x"),
        NewClaim(CLAIMANT, Amount("EUR", 1), "y"),
    ]
    assert len({base.fingerprint(), *(v.fingerprint() for v in variants)}) == 5
