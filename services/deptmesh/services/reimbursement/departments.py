"""Reimbursement's outbound calls, in one place: the departments it calls and how.

Every call goes through a channel the host opened (`host.connect`: found
through the registry, over mTLS, traced, always with a deadline), and every
failure of another department becomes one of our own errors here, so the claim
logic never handles grpc errors.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from deptmesh.finance.v1 import finance_pb2, finance_pb2_grpc
from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.services.money import Amount
from deptmesh.sidecar import FailedPrecondition, ServiceError, Unavailable

# How long one call to another department may take.
CALL_TIMEOUT_SECONDS = 3.0
# Failures that a later try may not meet: finance's database busy or briefly
# unreachable (UNAVAILABLE), a deadline that ran out, or a transaction aborted
# by a conflict. They become our Unavailable, so an approved claim stays APPROVED
# and the payout retrier pays it later (once: the claim id is the idempotency key).
_RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.ABORTED,
    }
)

# The reason another department's refusal is passed on with when it carries no
# ErrorInfo reason of its own, for each such status its contract or the mesh
# declares (literals: the contract tests read them). A status outside its
# contract is taken as the department being unavailable.
_REFUSAL_REASONS = {
    ("hr", grpc.StatusCode.INVALID_ARGUMENT): "HR_INVALID_ARGUMENT",
    ("hr", grpc.StatusCode.UNAUTHENTICATED): "HR_UNAUTHENTICATED",
    ("hr", grpc.StatusCode.INTERNAL): "HR_INTERNAL",
    ("finance", grpc.StatusCode.INVALID_ARGUMENT): "FINANCE_INVALID_ARGUMENT",
    ("finance", grpc.StatusCode.NOT_FOUND): "FINANCE_NOT_FOUND",
    ("finance", grpc.StatusCode.UNAUTHENTICATED): "FINANCE_UNAUTHENTICATED",
    ("finance", grpc.StatusCode.INTERNAL): "FINANCE_INTERNAL",
}


@dataclass(frozen=True, slots=True)
class Manager:
    """What reimbursement needs to know about a claimant from HR."""

    manager_id: str
    cost_center_id: str


class Departments:
    """HR and finance as reimbursement uses them, over channels to each."""

    def __init__(self, *, hr: grpc.Channel, finance: grpc.Channel) -> None:
        self._employees = hr_pb2_grpc.EmployeeServiceStub(hr)
        self._budgets = finance_pb2_grpc.BudgetServiceStub(finance)
        self._payments = finance_pb2_grpc.PaymentServiceStub(finance)

    def employee(self, employee_id: str) -> Manager | None:
        """The employee's manager and cost centre, or None when HR has no such employee."""
        try:
            response = self._employees.GetEmployee(
                hr_pb2.GetEmployeeRequest(employee_id=employee_id)
            )
        except grpc.RpcError as error:
            if error.code() is grpc.StatusCode.NOT_FOUND:
                return None
            raise _our_error("hr", error) from error
        return Manager(response.employee.manager_id, response.employee.cost_center_id)

    def reserve(self, claim_id: str, cost_center_id: str, amount: Amount) -> str:
        """Reserves the claim's amount (once per claim); returns the reservation id."""
        with _mapped("finance"):
            response = self._budgets.ReserveFunds(
                finance_pb2.ReserveFundsRequest(
                    idempotency_key=claim_id,
                    cost_center_id=cost_center_id,
                    amount=amount.to_proto(),
                )
            )
        return response.reservation.reservation_id

    def pay(self, claim_id: str, reservation_id: str, employee_id: str, amount: Amount) -> str:
        """Pays the claim (once per claim, whatever the retries); returns the payout id."""
        with _mapped("finance"):
            response = self._payments.Payout(
                finance_pb2.PayoutRequest(
                    idempotency_key=claim_id,
                    reservation_id=reservation_id,
                    payee_employee_id=employee_id,
                    amount=amount.to_proto(),
                    memo=f"reimbursement {claim_id}",
                )
            )
        return response.payout.payout_id


@contextmanager
def _mapped(department: str) -> Iterator[None]:
    """Turns another department's failure into ours, keeping its reason."""
    try:
        yield
    except grpc.RpcError as error:
        raise _our_error(department, error) from error


def _our_error(department: str, error: grpc.RpcError) -> ServiceError:
    code: grpc.StatusCode = error.code()
    details: str = error.details() or ""
    metadata = {"department": department}
    # Anything else another department refuses is a state we cannot change
    # from here; its own reason (INSUFFICIENT_FUNDS, ...) tells the caller why.
    reason = (
        ""
        if code in _RETRYABLE
        else _reason_of(error) or _REFUSAL_REASONS.get((department, code), "")
    )
    if not reason:
        return Unavailable(
            f"{department} is unavailable ({code.name})",
            reason="DEPENDENCY_UNAVAILABLE",
            metadata=metadata,
        )
    return FailedPrecondition(f"{department}: {details}", reason=reason, metadata=metadata)


def _reason_of(error: grpc.RpcError) -> str:
    status = rpc_status.from_call(error)  # type: ignore[arg-type]  # RpcErrors from stubs are Calls
    for detail in [] if status is None else status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""
