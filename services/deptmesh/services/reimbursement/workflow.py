"""A claim's life: filed, decided by the claimant's manager (as HR says), paid by finance.

Approval reserves the amount first and records APPROVED only once finance holds
it, so an approved claim can always be paid. The payout uses the claim id as the
idempotency key: however often it is retried (inline, by the retrier, after a
restart), finance pays a claim at most once.
"""

from __future__ import annotations

import structlog

from deptmesh.services.reimbursement.departments import Departments, Manager
from deptmesh.services.reimbursement.store import Claim, ClaimStore, NewClaim
from deptmesh.sidecar import FailedPrecondition, PermissionDenied, ServiceError, Unavailable

_log = structlog.get_logger("deptmesh.reimbursement")


class ClaimWorkflow:
    def __init__(self, store: ClaimStore, departments: Departments) -> None:
        self._store = store
        self._departments = departments

    def submit(self, caller: str, request_id: str, claim: NewClaim) -> Claim:
        if self._departments.employee(claim.employee_id) is None:
            raise FailedPrecondition(
                f"HR has no employee {claim.employee_id}",
                reason="EMPLOYEE_NOT_FOUND",
                metadata={"employee_id": claim.employee_id},
            )
        return self._store.submit(caller, request_id, claim)

    def approve(self, claim_id: str, approver_id: str) -> Claim:
        claim = self._submitted(claim_id)
        manager = self._check_manager(claim, approver_id)
        reservation_id = self._departments.reserve(
            claim.claim_id, manager.cost_center_id, claim.amount
        )
        approved = self._store.approve(claim.claim_id, approver_id, reservation_id)
        _log.info("claim_approved", claim_id=claim_id, approver_id=approver_id)
        return self.pay(approved)

    def reject(self, claim_id: str, approver_id: str, reason: str) -> Claim:
        claim = self._submitted(claim_id)
        self._check_manager(claim, approver_id)
        rejected = self._store.reject(claim.claim_id, approver_id, reason)
        _log.info("claim_rejected", claim_id=claim_id, approver_id=approver_id)
        return rejected

    def pay(self, claim: Claim) -> Claim:
        """Pays an APPROVED claim; leaves it APPROVED for a retry if finance is unavailable."""
        try:
            payout_id = self._departments.pay(
                claim.claim_id, claim.reservation_id, claim.employee_id, claim.amount
            )
        except Unavailable as error:
            _log.warning("payout_deferred", claim_id=claim.claim_id, error=error.message)
            return claim
        try:
            paid = self._store.mark_paid(claim.claim_id, payout_id)
        except FailedPrecondition:
            # Paid concurrently (inline and by the retrier): finance paid once,
            # and the claim already says so.
            return self._store.get(claim.claim_id)
        _log.info("claim_paid", claim_id=claim.claim_id, payout_id=payout_id)
        return paid

    def pay_pending(self, limit: int = 100) -> int:
        """Retries the payouts of APPROVED claims; returns how many are now PAID."""
        paid = 0
        for claim in self._store.awaiting_payout(limit):
            try:
                paid += self.pay(claim).payout_id != ""
            except ServiceError as error:
                _log.error("payout_failed", claim_id=claim.claim_id, reason=error.reason)
        return paid

    def _submitted(self, claim_id: str) -> Claim:
        claim = self._store.get(claim_id)
        if claim.state != "SUBMITTED":
            raise FailedPrecondition(
                f"claim {claim_id} is {claim.state}, not SUBMITTED",
                reason="CLAIM_NOT_SUBMITTED",
                metadata={"claim_id": claim_id, "state": claim.state},
            )
        return claim

    def _check_manager(self, claim: Claim, approver_id: str) -> Manager:
        employee = self._departments.employee(claim.employee_id)
        if employee is None:
            raise FailedPrecondition(
                f"HR no longer has employee {claim.employee_id}", reason="EMPLOYEE_NOT_FOUND"
            )
        if employee.manager_id != approver_id:
            raise PermissionDenied(
                f"{approver_id} is not the manager of {claim.employee_id}",
                reason="NOT_THE_MANAGER",
                metadata={"approver_id": approver_id, "employee_id": claim.employee_id},
            )
        return employee
