"""How to make each department's method answer each error case its contract declares.

SCENARIOS is the table: (method, code, reason) -> how to provoke it, in words
and as a function that makes the call in one of the meshes of
company_meshes.py and lets its RpcError out. Each scenario builds what it
needs with ids of its own, so scenarios run in any order, alone or together.
"""

from __future__ import annotations

import datetime
import sqlite3
import uuid
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass

from google.protobuf.timestamp_pb2 import Timestamp

from deptmesh.common.v1 import money_pb2
from deptmesh.finance.v1 import finance_pb2 as fin
from deptmesh.finance.v1 import finance_pb2_grpc
from deptmesh.hr.v1 import hr_pb2 as hr
from deptmesh.hr.v1 import hr_pb2_grpc
from deptmesh.metering.v1 import metering_pb2 as met
from deptmesh.metering.v1 import metering_pb2_grpc
from deptmesh.reimbursement.v1 import reimbursement_pb2 as rb
from deptmesh.reimbursement.v1 import reimbursement_pb2_grpc
from deptmesh.services.money import Amount
from deptmesh.services.reimbursement.store import ClaimStore, NewClaim
from deptmesh.travel.v1 import travel_pb2 as tr
from deptmesh.travel.v1 import travel_pb2_grpc
from tests.contracts.company_meshes import DAMAGED_BUDGET, DAMAGED_EMPLOYEE, NO_BUDGET, Meshes
from tests.contracts.department_meshes import DepartmentMesh

__all__ = ["SCENARIOS", "Scenario"]

CLAIMANT, PEER, MANAGER = "E1002", "E1003", "E1001"
UNKNOWN_EMPLOYEE = "E9999"
MALFORMED_ID = "../etc/passwd"
TIMEOUT = 10.0


def eur(units: int, nanos: int = 0) -> money_pb2.Money:
    return money_pb2.Money(currency_code="EUR", units=units, nanos=nanos)


def fresh(prefix: str) -> str:
    """An id no other scenario uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@dataclass(frozen=True)
class Scenario:
    """One declared case of one method, and how to make the method answer it."""

    method: str  # the method's full name, as its descriptor spells it
    code: str
    reason: str
    how: str
    provoke: Callable[[Meshes], object]

    @property
    def id(self) -> str:
        return f"{self.method.rsplit('.', 2)[-1]}-{self.code}-{self.reason or 'no_reason'}"


# --- stubs ------------------------------------------------------------------------


def employees(mesh: DepartmentMesh) -> hr_pb2_grpc.EmployeeServiceStub:
    return mesh.stub(hr_pb2_grpc.EmployeeServiceStub, "hr")


def budgets(
    mesh: DepartmentMesh, caller: str = "test-client"
) -> finance_pb2_grpc.BudgetServiceStub:
    return mesh.stub(finance_pb2_grpc.BudgetServiceStub, "finance", caller=caller)


def payments(
    mesh: DepartmentMesh, caller: str = "test-client"
) -> finance_pb2_grpc.PaymentServiceStub:
    return mesh.stub(finance_pb2_grpc.PaymentServiceStub, "finance", caller=caller)


def claims(mesh: DepartmentMesh) -> reimbursement_pb2_grpc.ReimbursementServiceStub:
    return mesh.stub(reimbursement_pb2_grpc.ReimbursementServiceStub, "reimbursement")


def trips(mesh: DepartmentMesh) -> travel_pb2_grpc.TripServiceStub:
    return mesh.stub(travel_pb2_grpc.TripServiceStub, "travel")


def ledger(mesh: DepartmentMesh, caller: str) -> metering_pb2_grpc.UsageLedgerServiceStub:
    return mesh.stub(metering_pb2_grpc.UsageLedgerServiceStub, "metering", caller=caller)


# --- finance ----------------------------------------------------------------------


def reserve(
    mesh: DepartmentMesh, amount: money_pb2.Money, *, key: str = "", caller: str = "test-client"
) -> fin.Reservation:
    request = fin.ReserveFundsRequest(
        idempotency_key=key or fresh("key"), cost_center_id="CC-ENG", amount=amount
    )
    return budgets(mesh, caller).ReserveFunds(request, timeout=TIMEOUT).reservation


def pay(
    mesh: DepartmentMesh,
    reservation_id: str,
    amount: money_pb2.Money,
    *,
    key: str = "",
    memo: str = "a scenario",
) -> fin.PayoutResponse:
    request = fin.PayoutRequest(
        idempotency_key=key or fresh("key"),
        reservation_id=reservation_id,
        payee_employee_id=CLAIMANT,
        amount=amount,
        memo=memo,
    )
    return payments(mesh).Payout(request, timeout=TIMEOUT)


def release(mesh: DepartmentMesh, reservation_id: str) -> fin.ReleaseReservationResponse:
    request = fin.ReleaseReservationRequest(reservation_id=reservation_id)
    return budgets(mesh).ReleaseReservation(request, timeout=TIMEOUT)


def reserve_twice_with_one_key(meshes: Meshes) -> object:
    key = fresh("key")
    reserve(meshes.healthy, eur(10), key=key)
    return reserve(meshes.healthy, eur(11), key=key)


def release_a_spent_reservation(meshes: Meshes) -> object:
    reservation = reserve(meshes.healthy, eur(10))
    pay(meshes.healthy, reservation.reservation_id, eur(10))
    return release(meshes.healthy, reservation.reservation_id)


def pay_a_released_reservation(meshes: Meshes) -> object:
    reservation = reserve(meshes.healthy, eur(10))
    release(meshes.healthy, reservation.reservation_id)
    return pay(meshes.healthy, reservation.reservation_id, eur(10))


def pay_a_reservation_twice(meshes: Meshes) -> object:
    reservation = reserve(meshes.healthy, eur(10))
    pay(meshes.healthy, reservation.reservation_id, eur(10))
    return pay(meshes.healthy, reservation.reservation_id, eur(10))


def pay_another_amount(meshes: Meshes) -> object:
    reservation = reserve(meshes.healthy, eur(10))
    return pay(meshes.healthy, reservation.reservation_id, eur(9))


def pay_with_a_used_key(meshes: Meshes) -> object:
    key = fresh("key")
    reservation = reserve(meshes.healthy, eur(10))
    pay(meshes.healthy, reservation.reservation_id, eur(10), key=key)
    return pay(meshes.healthy, reservation.reservation_id, eur(10), key=key, memo="another")


# --- reimbursement ----------------------------------------------------------------


def submit(
    mesh: DepartmentMesh,
    employee_id: str = CLAIMANT,
    amount: money_pb2.Money | None = None,
    *,
    request_id: str = "",
    description: str = "Train to a conference",
) -> rb.Claim:
    request = rb.SubmitClaimRequest(
        employee_id=employee_id,
        amount=amount or eur(42, 500_000_000),
        description=description,
        request_id=request_id,
    )
    return claims(mesh).SubmitClaim(request, timeout=TIMEOUT).claim


def on_file(mesh: DepartmentMesh, employee_id: str, amount: money_pb2.Money | None = None) -> str:
    """Files a claim straight into reimbursement's database, as one filed earlier (when HR
    still had the employee, or knew how to answer) would be; returns its id."""
    store = ClaimStore(mesh.database("reimbursement"))
    try:
        claim = NewClaim(employee_id, Amount.from_proto(amount or eur(42)), "Filed earlier")
        return store.submit("test-client", "", claim).claim_id
    finally:
        store.close()


def approve(mesh: DepartmentMesh, claim_id: str, approver_id: str = MANAGER) -> rb.Claim:
    request = rb.ApproveClaimRequest(claim_id=claim_id, approver_id=approver_id)
    return claims(mesh).ApproveClaim(request, timeout=TIMEOUT).claim


def reject(mesh: DepartmentMesh, claim_id: str, approver_id: str = MANAGER) -> rb.Claim:
    request = rb.RejectClaimRequest(claim_id=claim_id, approver_id=approver_id, reason="No receipt")
    return claims(mesh).RejectClaim(request, timeout=TIMEOUT).claim


def submit_twice_with_one_request_id(meshes: Meshes) -> object:
    request_id = fresh("req")
    submit(meshes.healthy, request_id=request_id)
    return submit(meshes.healthy, request_id=request_id, description="Something else")


def decide_a_decided_claim(
    decide: Callable[[DepartmentMesh, str], object],
) -> Callable[..., object]:
    def provoke(meshes: Meshes) -> object:
        claim = submit(meshes.healthy)
        reject(meshes.healthy, claim.claim_id)
        return decide(meshes.healthy, claim.claim_id)

    return provoke


def decide_by_a_peer(decide: Callable[[DepartmentMesh, str, str], object]) -> Callable[..., object]:
    def provoke(meshes: Meshes) -> object:
        return decide(meshes.healthy, submit(meshes.healthy).claim_id, PEER)

    return provoke


def decide_on_file(
    decide: Callable[[DepartmentMesh, str], object],
    mesh: Callable[[Meshes], DepartmentMesh],
    employee_id: str = CLAIMANT,
    amount: money_pb2.Money | None = None,
) -> Callable[..., object]:
    """Decides a claim filed straight into the database of `mesh`'s reimbursement."""

    def provoke(meshes: Meshes) -> object:
        chosen = mesh(meshes)
        return decide(chosen, on_file(chosen, employee_id, amount))

    return provoke


def approve_with_finance_holding(prepare: Callable[[DepartmentMesh, rb.Claim], None]):
    """Approves a fresh claim after `prepare` left finance holding something under its id."""

    def provoke(meshes: Meshes) -> object:
        claim = submit(meshes.healthy, amount=eur(12))
        prepare(meshes.healthy, claim)
        return approve(meshes.healthy, claim.claim_id)

    return provoke


def _reserved_for(mesh: DepartmentMesh, claim: rb.Claim, amount: money_pb2.Money) -> str:
    # Reimbursement reserves with the claim id as its idempotency key, as reimbursement.
    return reserve(mesh, amount, key=claim.claim_id, caller="reimbursement").reservation_id


def _reserved_otherwise(mesh: DepartmentMesh, claim: rb.Claim) -> None:
    _reserved_for(mesh, claim, eur(13))


def _reserved_then_released(mesh: DepartmentMesh, claim: rb.Claim) -> None:
    release(mesh, _reserved_for(mesh, claim, claim.amount))


def _reserved_then_spent(mesh: DepartmentMesh, claim: rb.Claim) -> None:
    pay(mesh, _reserved_for(mesh, claim, claim.amount), claim.amount)


def _reserved_then_changed(mesh: DepartmentMesh, claim: rb.Claim) -> None:
    reservation_id = _reserved_for(mesh, claim, claim.amount)
    # An operator's correction in finance's own database, behind the service's back.
    with closing(sqlite3.connect(mesh.database("finance"))) as finance, finance:
        finance.execute(
            "UPDATE reservations SET amount_nanos = amount_nanos - 1 WHERE reservation_id = ?",
            (reservation_id,),
        )


# --- travel -----------------------------------------------------------------------


def request_trip(
    mesh: DepartmentMesh, traveller_id: str = CLAIMANT, *, request_id: str = "", purpose: str = ""
) -> object:
    today = datetime.datetime.now(datetime.UTC).date()
    request = tr.RequestTripRequest(
        request_id=request_id or fresh("req"),
        traveller_id=traveller_id,
        destination="Lisbon",
        purpose=purpose or "A conference",
        departure_date=(today + datetime.timedelta(days=10)).isoformat(),
        return_date=(today + datetime.timedelta(days=12)).isoformat(),
        estimated_cost=eur(800),
    )
    return trips(mesh).RequestTrip(request, timeout=TIMEOUT)


def request_trip_twice_with_one_request_id(meshes: Meshes) -> object:
    request_id = fresh("req")
    request_trip(meshes.healthy, request_id=request_id)
    return request_trip(meshes.healthy, request_id=request_id, purpose="Another")


# --- metering ---------------------------------------------------------------------


def usage_record(record_id: str, callee: str, calls: int = 1) -> met.UsageRecord:
    minute = Timestamp(seconds=int(datetime.datetime.now(datetime.UTC).timestamp()) // 60 * 60)
    return met.UsageRecord(
        record_id=record_id,
        caller="reimbursement",
        callee=callee,
        method="/deptmesh.hr.v1.EmployeeService/GetEmployee",
        status_class=met.STATUS_CLASS_OK,
        minute=minute,
        calls=calls,
        cost_units=calls,
    )


def report(meshes: Meshes, *records: met.UsageRecord) -> object:
    request = met.ReportUsageRequest(records=records)
    return ledger(meshes.healthy, "hr").ReportUsage(request, timeout=TIMEOUT)


def report_one_record_twice(meshes: Meshes) -> object:
    record_id = fresh("rec")
    report(meshes, usage_record(record_id, "hr", calls=1))
    return report(meshes, usage_record(record_id, "hr", calls=2))


def this_month() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m")


def last_week() -> Timestamp:
    now = datetime.datetime.now(datetime.UTC)
    return Timestamp(seconds=int((now - datetime.timedelta(days=7)).timestamp()))


# --- the table --------------------------------------------------------------------

HR = "deptmesh.hr.v1.EmployeeService."
BUDGETS = "deptmesh.finance.v1.BudgetService."
PAYMENTS = "deptmesh.finance.v1.PaymentService."
CLAIMS = "deptmesh.reimbursement.v1.ReimbursementService."
TRIPS = "deptmesh.travel.v1.TripService."
LEDGER = "deptmesh.metering.v1.UsageLedgerService."

# Refusals of HR that reimbursement's three HR-asking methods pass on, the same way.
_HR_REFUSALS: tuple[tuple[str, str, str, Callable[[Meshes], DepartmentMesh]], ...] = (
    (
        "UNAVAILABLE",
        "DEPENDENCY_UNAVAILABLE",
        "HR registered but not answering",
        lambda m: m.hr_gone,
    ),
    ("FAILED_PRECONDITION", "ACCESS_DENIED", "HR's policy denies everyone", lambda m: m.hr_denies),
    (
        "FAILED_PRECONDITION",
        "QUOTA_EXCEEDED",
        "HR's quota of one call per 1000 s, spent",
        lambda m: m.hr_throttles,
    ),
    (
        "FAILED_PRECONDITION",
        "TOO_MANY_IN_FLIGHT",
        "HR runs one call of reimbursement's at a time, and one is held (stand-in HR)",
        lambda m: m.hr_busy,
    ),
    (
        "FAILED_PRECONDITION",
        "HR_UNAUTHENTICATED",
        "HR accepts callers of another trust domain only",
        lambda m: m.hr_foreign,
    ),
)


def _submit_in(mesh: Callable[[Meshes], DepartmentMesh]) -> Callable[[Meshes], object]:
    return lambda meshes: submit(mesh(meshes))


def _hr_refusals_of_submit() -> list[Scenario]:
    return [
        Scenario(CLAIMS + "SubmitClaim", code, reason, how, _submit_in(mesh))
        for code, reason, how, mesh in _HR_REFUSALS
    ]


def _hr_refusals_of(method: str, decide: Callable[[DepartmentMesh, str], object]) -> list[Scenario]:
    return [
        Scenario(
            CLAIMS + method, code, reason, f"a claim on file; {how}", decide_on_file(decide, mesh)
        )
        for code, reason, how, mesh in _HR_REFUSALS
    ]


def _healthy(meshes: Meshes) -> DepartmentMesh:
    return meshes.healthy


def _decisions(method: str, decide: Callable[..., object]) -> list[Scenario]:
    """What ApproveClaim and RejectClaim both answer, before finance is asked."""
    return [
        Scenario(
            CLAIMS + method,
            "INVALID_ARGUMENT",
            "",
            "empty request",
            lambda m: decide(m.healthy, "", ""),
        ),
        Scenario(
            CLAIMS + method,
            "NOT_FOUND",
            "",
            "no such claim",
            lambda m: decide(m.healthy, fresh("clm")),
        ),
        Scenario(
            CLAIMS + method,
            "PERMISSION_DENIED",
            "NOT_THE_MANAGER",
            "decided by a peer of the claimant",
            decide_by_a_peer(decide),
        ),
        Scenario(
            CLAIMS + method,
            "FAILED_PRECONDITION",
            "CLAIM_NOT_SUBMITTED",
            "a claim rejected already",
            decide_a_decided_claim(decide),
        ),
        Scenario(
            CLAIMS + method,
            "FAILED_PRECONDITION",
            "EMPLOYEE_NOT_FOUND",
            "a claim on file for an employee HR does not have",
            decide_on_file(decide, _healthy, UNKNOWN_EMPLOYEE),
        ),
        Scenario(
            CLAIMS + method,
            "FAILED_PRECONDITION",
            "HR_INVALID_ARGUMENT",
            "a claim on file whose employee id HR cannot read",
            decide_on_file(decide, _healthy, "not an id"),
        ),
        Scenario(
            CLAIMS + method,
            "FAILED_PRECONDITION",
            "HR_INTERNAL",
            "a claim on file for an employee whose HR row is damaged",
            decide_on_file(decide, _healthy, DAMAGED_EMPLOYEE),
        ),
        *_hr_refusals_of(method, decide),
    ]


SCENARIOS: tuple[Scenario, ...] = (
    # HR
    Scenario(
        HR + "GetEmployee",
        "INVALID_ARGUMENT",
        "",
        "a malformed id",
        lambda m: employees(m.healthy).GetEmployee(
            hr.GetEmployeeRequest(employee_id=MALFORMED_ID), timeout=TIMEOUT
        ),
    ),
    Scenario(
        HR + "GetEmployee",
        "NOT_FOUND",
        "",
        "an unknown id",
        lambda m: employees(m.healthy).GetEmployee(
            hr.GetEmployeeRequest(employee_id=UNKNOWN_EMPLOYEE), timeout=TIMEOUT
        ),
    ),
    Scenario(
        HR + "ListEmployees",
        "INVALID_ARGUMENT",
        "",
        "a negative page size",
        lambda m: employees(m.healthy).ListEmployees(
            hr.ListEmployeesRequest(page_size=-1), timeout=TIMEOUT
        ),
    ),
    Scenario(
        HR + "GetManagerChain",
        "INVALID_ARGUMENT",
        "",
        "an empty id",
        lambda m: employees(m.healthy).GetManagerChain(
            hr.GetManagerChainRequest(), timeout=TIMEOUT
        ),
    ),
    Scenario(
        HR + "GetManagerChain",
        "NOT_FOUND",
        "",
        "an unknown id",
        lambda m: employees(m.healthy).GetManagerChain(
            hr.GetManagerChainRequest(employee_id=UNKNOWN_EMPLOYEE), timeout=TIMEOUT
        ),
    ),
    Scenario(
        HR + "GetCostCenter",
        "INVALID_ARGUMENT",
        "",
        "an empty id",
        lambda m: employees(m.healthy).GetCostCenter(hr.GetCostCenterRequest(), timeout=TIMEOUT),
    ),
    Scenario(
        HR + "GetCostCenter",
        "NOT_FOUND",
        "",
        "an unknown id",
        lambda m: employees(m.healthy).GetCostCenter(
            hr.GetCostCenterRequest(cost_center_id="CC-NONE"), timeout=TIMEOUT
        ),
    ),
    # finance: budgets
    Scenario(
        BUDGETS + "GetBudget",
        "INVALID_ARGUMENT",
        "",
        "an empty cost centre",
        lambda m: budgets(m.healthy).GetBudget(fin.GetBudgetRequest(), timeout=TIMEOUT),
    ),
    Scenario(
        BUDGETS + "GetBudget",
        "NOT_FOUND",
        "",
        "a cost centre without a budget",
        lambda m: budgets(m.healthy).GetBudget(
            fin.GetBudgetRequest(cost_center_id=NO_BUDGET.cost_center_id), timeout=TIMEOUT
        ),
    ),
    Scenario(
        BUDGETS + "ReserveFunds",
        "INVALID_ARGUMENT",
        "",
        "an empty request",
        lambda m: budgets(m.healthy).ReserveFunds(fin.ReserveFundsRequest(), timeout=TIMEOUT),
    ),
    Scenario(
        BUDGETS + "ReserveFunds",
        "NOT_FOUND",
        "",
        "a cost centre without a budget",
        lambda m: budgets(m.healthy).ReserveFunds(
            fin.ReserveFundsRequest(
                idempotency_key=fresh("key"),
                cost_center_id=NO_BUDGET.cost_center_id,
                amount=eur(1),
            ),
            timeout=TIMEOUT,
        ),
    ),
    Scenario(
        BUDGETS + "ReserveFunds",
        "FAILED_PRECONDITION",
        "INSUFFICIENT_FUNDS",
        "more than the whole budget",
        lambda m: reserve(m.healthy, eur(10_000_000)),
    ),
    Scenario(
        BUDGETS + "ReserveFunds",
        "ALREADY_EXISTS",
        "IDEMPOTENCY_KEY_REUSED",
        "one key, two amounts",
        reserve_twice_with_one_key,
    ),
    Scenario(
        BUDGETS + "ReleaseReservation",
        "INVALID_ARGUMENT",
        "",
        "an empty id",
        lambda m: release(m.healthy, ""),
    ),
    Scenario(
        BUDGETS + "ReleaseReservation",
        "NOT_FOUND",
        "",
        "an unknown id",
        lambda m: release(m.healthy, fresh("rsv")),
    ),
    Scenario(
        BUDGETS + "ReleaseReservation",
        "FAILED_PRECONDITION",
        "RESERVATION_CONSUMED",
        "a reservation paid out",
        release_a_spent_reservation,
    ),
    # finance: payments
    Scenario(
        PAYMENTS + "Payout",
        "INVALID_ARGUMENT",
        "",
        "an empty request",
        lambda m: payments(m.healthy).Payout(fin.PayoutRequest(), timeout=TIMEOUT),
    ),
    Scenario(
        PAYMENTS + "Payout",
        "NOT_FOUND",
        "",
        "an unknown reservation",
        lambda m: pay(m.healthy, fresh("rsv"), eur(10)),
    ),
    Scenario(
        PAYMENTS + "Payout",
        "FAILED_PRECONDITION",
        "RESERVATION_RELEASED",
        "a released reservation",
        pay_a_released_reservation,
    ),
    Scenario(
        PAYMENTS + "Payout",
        "FAILED_PRECONDITION",
        "RESERVATION_CONSUMED",
        "a reservation paid under another key",
        pay_a_reservation_twice,
    ),
    Scenario(
        PAYMENTS + "Payout",
        "FAILED_PRECONDITION",
        "AMOUNT_MISMATCH",
        "an amount other than the reservation's",
        pay_another_amount,
    ),
    Scenario(
        PAYMENTS + "Payout",
        "ALREADY_EXISTS",
        "IDEMPOTENCY_KEY_REUSED",
        "one key, two memos",
        pay_with_a_used_key,
    ),
    Scenario(
        PAYMENTS + "GetPayout",
        "INVALID_ARGUMENT",
        "",
        "an empty id",
        lambda m: payments(m.healthy).GetPayout(fin.GetPayoutRequest(), timeout=TIMEOUT),
    ),
    Scenario(
        PAYMENTS + "GetPayout",
        "NOT_FOUND",
        "",
        "an unknown id",
        lambda m: payments(m.healthy).GetPayout(
            fin.GetPayoutRequest(payout_id=fresh("pay")), timeout=TIMEOUT
        ),
    ),
    Scenario(
        PAYMENTS + "ListLedgerEntries",
        "INVALID_ARGUMENT",
        "",
        "a negative page size",
        lambda m: payments(m.healthy).ListLedgerEntries(
            fin.ListLedgerEntriesRequest(page_size=-1), timeout=TIMEOUT
        ),
    ),
    # reimbursement
    Scenario(
        CLAIMS + "SubmitClaim",
        "INVALID_ARGUMENT",
        "",
        "an empty request",
        lambda m: claims(m.healthy).SubmitClaim(rb.SubmitClaimRequest(), timeout=TIMEOUT),
    ),
    Scenario(
        CLAIMS + "SubmitClaim",
        "FAILED_PRECONDITION",
        "EMPLOYEE_NOT_FOUND",
        "an employee HR does not have",
        lambda m: submit(m.healthy, UNKNOWN_EMPLOYEE),
    ),
    Scenario(
        CLAIMS + "SubmitClaim",
        "ALREADY_EXISTS",
        "IDEMPOTENCY_KEY_REUSED",
        "one request_id, two descriptions",
        submit_twice_with_one_request_id,
    ),
    Scenario(
        CLAIMS + "SubmitClaim",
        "FAILED_PRECONDITION",
        "HR_INVALID_ARGUMENT",
        "an HR that calls every question malformed (stand-in HR)",
        lambda m: submit(m.hr_refuses_questions),
    ),
    Scenario(
        CLAIMS + "SubmitClaim",
        "FAILED_PRECONDITION",
        "HR_INTERNAL",
        "an employee whose HR row is damaged",
        lambda m: submit(m.healthy, DAMAGED_EMPLOYEE),
    ),
    *_hr_refusals_of_submit(),
    Scenario(
        CLAIMS + "GetClaim",
        "INVALID_ARGUMENT",
        "",
        "an empty id",
        lambda m: claims(m.healthy).GetClaim(rb.GetClaimRequest(), timeout=TIMEOUT),
    ),
    Scenario(
        CLAIMS + "GetClaim",
        "NOT_FOUND",
        "",
        "an unknown id",
        lambda m: claims(m.healthy).GetClaim(
            rb.GetClaimRequest(claim_id=fresh("clm")), timeout=TIMEOUT
        ),
    ),
    Scenario(
        CLAIMS + "ListClaims",
        "INVALID_ARGUMENT",
        "",
        "a negative page size",
        lambda m: claims(m.healthy).ListClaims(rb.ListClaimsRequest(page_size=-1), timeout=TIMEOUT),
    ),
    *_decisions("ApproveClaim", approve),
    Scenario(
        CLAIMS + "ApproveClaim",
        "FAILED_PRECONDITION",
        "INSUFFICIENT_FUNDS",
        "a claim larger than the budget",
        lambda m: approve(m.healthy, submit(m.healthy, amount=eur(10_000_000)).claim_id),
    ),
    Scenario(
        CLAIMS + "ApproveClaim",
        "FAILED_PRECONDITION",
        "IDEMPOTENCY_KEY_REUSED",
        "finance already holds another amount under the claim's id",
        approve_with_finance_holding(_reserved_otherwise),
    ),
    Scenario(
        CLAIMS + "ApproveClaim",
        "FAILED_PRECONDITION",
        "RESERVATION_RELEASED",
        "finance released the claim's reservation",
        approve_with_finance_holding(_reserved_then_released),
    ),
    Scenario(
        CLAIMS + "ApproveClaim",
        "FAILED_PRECONDITION",
        "RESERVATION_CONSUMED",
        "another payout spent the claim's reservation",
        approve_with_finance_holding(_reserved_then_spent),
    ),
    Scenario(
        CLAIMS + "ApproveClaim",
        "FAILED_PRECONDITION",
        "AMOUNT_MISMATCH",
        "the claim's reservation was changed in finance's database",
        approve_with_finance_holding(_reserved_then_changed),
    ),
    Scenario(
        CLAIMS + "ApproveClaim",
        "FAILED_PRECONDITION",
        "FINANCE_INVALID_ARGUMENT",
        "a claim in a currency that is not the budget's",
        lambda m: approve(
            m.healthy,
            submit(m.healthy, amount=money_pb2.Money(currency_code="USD", units=5)).claim_id,
        ),
    ),
    Scenario(
        CLAIMS + "ApproveClaim",
        "FAILED_PRECONDITION",
        "FINANCE_NOT_FOUND",
        "a claimant whose cost centre has no budget",
        lambda m: approve(m.healthy, submit(m.healthy, NO_BUDGET.employee_id).claim_id),
    ),
    Scenario(
        CLAIMS + "ApproveClaim",
        "FAILED_PRECONDITION",
        "FINANCE_UNAUTHENTICATED",
        "finance accepts callers of another trust domain only",
        lambda m: approve(m.finance_foreign, submit(m.finance_foreign).claim_id),
    ),
    Scenario(
        CLAIMS + "ApproveClaim",
        "FAILED_PRECONDITION",
        "FINANCE_INTERNAL",
        "a claimant whose cost centre's budget row is damaged",
        lambda m: approve(m.healthy, submit(m.healthy, DAMAGED_BUDGET.employee_id).claim_id),
    ),
    *_decisions("RejectClaim", reject),
    # travel
    Scenario(
        TRIPS + "RequestTrip",
        "INVALID_ARGUMENT",
        "",
        "an empty request",
        lambda m: trips(m.healthy).RequestTrip(tr.RequestTripRequest(), timeout=TIMEOUT),
    ),
    Scenario(
        TRIPS + "RequestTrip",
        "FAILED_PRECONDITION",
        "TRAVELLER_NOT_FOUND",
        "a traveller HR does not have",
        lambda m: request_trip(m.healthy, UNKNOWN_EMPLOYEE),
    ),
    Scenario(
        TRIPS + "RequestTrip",
        "FAILED_PRECONDITION",
        "HR_PERMISSION_DENIED",
        "HR's policy denies everyone",
        lambda m: request_trip(m.hr_denies),
    ),
    Scenario(
        TRIPS + "RequestTrip",
        "FAILED_PRECONDITION",
        "HR_INVALID_ARGUMENT",
        "an HR that calls every question malformed (stand-in HR)",
        lambda m: request_trip(m.hr_refuses_questions),
    ),
    Scenario(
        TRIPS + "RequestTrip",
        "FAILED_PRECONDITION",
        "HR_UNAUTHENTICATED",
        "HR accepts callers of another trust domain only",
        lambda m: request_trip(m.hr_foreign),
    ),
    Scenario(
        TRIPS + "RequestTrip",
        "FAILED_PRECONDITION",
        "HR_INTERNAL",
        "a traveller whose HR row is damaged",
        lambda m: request_trip(m.healthy, DAMAGED_EMPLOYEE),
    ),
    Scenario(
        TRIPS + "RequestTrip",
        "ALREADY_EXISTS",
        "IDEMPOTENCY_KEY_REUSED",
        "one request_id, two purposes",
        request_trip_twice_with_one_request_id,
    ),
    Scenario(
        TRIPS + "RequestTrip",
        "UNAVAILABLE",
        "DEPENDENCY_UNAVAILABLE",
        "HR registered but not answering",
        lambda m: request_trip(m.hr_gone),
    ),
    Scenario(
        TRIPS + "GetTrip",
        "INVALID_ARGUMENT",
        "",
        "an empty id",
        lambda m: trips(m.healthy).GetTrip(tr.GetTripRequest(), timeout=TIMEOUT),
    ),
    Scenario(
        TRIPS + "GetTrip",
        "NOT_FOUND",
        "",
        "an unknown id",
        lambda m: trips(m.healthy).GetTrip(
            tr.GetTripRequest(trip_id=fresh("trp")), timeout=TIMEOUT
        ),
    ),
    Scenario(
        TRIPS + "ListTrips",
        "INVALID_ARGUMENT",
        "",
        "a negative page size",
        lambda m: trips(m.healthy).ListTrips(tr.ListTripsRequest(page_size=-1), timeout=TIMEOUT),
    ),
    # metering
    Scenario(
        LEDGER + "ReportUsage",
        "INVALID_ARGUMENT",
        "",
        "a record without an id",
        lambda m: report(m, usage_record("", "hr")),
    ),
    Scenario(
        LEDGER + "ReportUsage",
        "PERMISSION_DENIED",
        "NOT_THE_CALLEE",
        "HR reports finance's usage",
        lambda m: report(m, usage_record(fresh("rec"), "finance")),
    ),
    Scenario(
        LEDGER + "ReportUsage",
        "ALREADY_EXISTS",
        "RECORD_ID_REUSED",
        "one record id, two counts",
        report_one_record_twice,
    ),
    Scenario(
        LEDGER + "QueryUsage",
        "INVALID_ARGUMENT",
        "",
        "an empty request",
        lambda m: ledger(m.healthy, "hr").QueryUsage(met.QueryUsageRequest(), timeout=TIMEOUT),
    ),
    Scenario(
        LEDGER + "QueryUsage",
        "PERMISSION_DENIED",
        "NOT_YOUR_USAGE",
        "HR reads finance's usage",
        lambda m: ledger(m.healthy, "hr").QueryUsage(
            met.QueryUsageRequest(department="finance", start_time=last_week()), timeout=TIMEOUT
        ),
    ),
    Scenario(
        LEDGER + "GetStatement",
        "INVALID_ARGUMENT",
        "",
        "a month that is not YYYY-MM",
        lambda m: ledger(m.healthy, "hr").GetStatement(
            met.GetStatementRequest(department="hr", month="May"), timeout=TIMEOUT
        ),
    ),
    Scenario(
        LEDGER + "GetStatement",
        "PERMISSION_DENIED",
        "NOT_YOUR_USAGE",
        "HR reads finance's statement",
        lambda m: ledger(m.healthy, "hr").GetStatement(
            met.GetStatementRequest(department="finance", month=this_month()), timeout=TIMEOUT
        ),
    ),
    Scenario(
        LEDGER + "GetStatement",
        "FAILED_PRECONDITION",
        "NO_RATE_CARD",
        "a ledger with no rate card",
        lambda m: ledger(m.healthy, "hr").GetStatement(
            met.GetStatementRequest(department="hr", month=this_month()), timeout=TIMEOUT
        ),
    ),
)
