"""The calls the error scenarios make, and the states they set up first.

Each builds what it needs with ids of its own (`fresh`), so that scenarios run
in any order, alone or together, in meshes they share.
"""

from __future__ import annotations

import datetime
import sqlite3
import uuid
from collections.abc import Callable
from contextlib import closing

from google.protobuf.timestamp_pb2 import Timestamp

from deptmesh.common.v1 import money_pb2
from deptmesh.finance.v1 import finance_pb2 as fin
from deptmesh.finance.v1 import finance_pb2_grpc
from deptmesh.hr.v1 import hr_pb2_grpc
from deptmesh.metering.v1 import metering_pb2 as met
from deptmesh.metering.v1 import metering_pb2_grpc
from deptmesh.reimbursement.v1 import reimbursement_pb2 as rb
from deptmesh.reimbursement.v1 import reimbursement_pb2_grpc
from deptmesh.services.money import Amount
from deptmesh.services.reimbursement.store import ClaimStore, NewClaim
from deptmesh.travel.v1 import travel_pb2 as tr
from deptmesh.travel.v1 import travel_pb2_grpc
from tests.contracts.company_meshes import Meshes
from tests.contracts.department_meshes import DepartmentMesh

__all__ = [
    "CLAIMANT",
    "MALFORMED_ID",
    "MANAGER",
    "PEER",
    "TIMEOUT",
    "UNKNOWN_EMPLOYEE",
    "approve",
    "approve_with_finance_holding",
    "budgets",
    "claims",
    "decide_a_decided_claim",
    "decide_by_a_peer",
    "decide_on_file",
    "employees",
    "eur",
    "fresh",
    "last_week",
    "ledger",
    "on_file",
    "pay",
    "pay_a_released_reservation",
    "pay_a_reservation_twice",
    "pay_another_amount",
    "pay_with_a_used_key",
    "payments",
    "reject",
    "release",
    "release_a_spent_reservation",
    "report",
    "report_one_record_twice",
    "request_trip",
    "request_trip_twice_with_one_request_id",
    "reserve",
    "reserve_twice_with_one_key",
    "reserved_otherwise",
    "reserved_then_changed",
    "reserved_then_released",
    "reserved_then_spent",
    "submit",
    "submit_twice_with_one_request_id",
    "this_month",
    "trips",
    "usage_record",
]

CLAIMANT, PEER, MANAGER = "E1002", "E1003", "E1001"
UNKNOWN_EMPLOYEE = "E9999"
MALFORMED_ID = "../etc/passwd"
TIMEOUT = 10.0


def eur(units: int, nanos: int = 0) -> money_pb2.Money:
    return money_pb2.Money(currency_code="EUR", units=units, nanos=nanos)


def fresh(prefix: str) -> str:
    """An id no other scenario uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


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
) -> Callable[[Meshes], object]:
    def provoke(meshes: Meshes) -> object:
        claim = submit(meshes.healthy)
        reject(meshes.healthy, claim.claim_id)
        return decide(meshes.healthy, claim.claim_id)

    return provoke


def decide_by_a_peer(
    decide: Callable[[DepartmentMesh, str, str], object],
) -> Callable[[Meshes], object]:
    def provoke(meshes: Meshes) -> object:
        return decide(meshes.healthy, submit(meshes.healthy).claim_id, PEER)

    return provoke


def decide_on_file(
    decide: Callable[[DepartmentMesh, str], object],
    mesh: Callable[[Meshes], DepartmentMesh],
    employee_id: str = CLAIMANT,
    amount: money_pb2.Money | None = None,
) -> Callable[[Meshes], object]:
    """Decides a claim filed straight into the database of `mesh`'s reimbursement."""

    def provoke(meshes: Meshes) -> object:
        chosen = mesh(meshes)
        return decide(chosen, on_file(chosen, employee_id, amount))

    return provoke


def approve_with_finance_holding(
    prepare: Callable[[DepartmentMesh, rb.Claim], None],
) -> Callable[[Meshes], object]:
    """Approves a fresh claim after `prepare` left finance holding something under its id."""

    def provoke(meshes: Meshes) -> object:
        claim = submit(meshes.healthy, amount=eur(12))
        prepare(meshes.healthy, claim)
        return approve(meshes.healthy, claim.claim_id)

    return provoke


def reserved_for(mesh: DepartmentMesh, claim: rb.Claim, amount: money_pb2.Money) -> str:
    # Reimbursement reserves with the claim id as its idempotency key, as reimbursement.
    return reserve(mesh, amount, key=claim.claim_id, caller="reimbursement").reservation_id


def reserved_otherwise(mesh: DepartmentMesh, claim: rb.Claim) -> None:
    reserved_for(mesh, claim, eur(13))


def reserved_then_released(mesh: DepartmentMesh, claim: rb.Claim) -> None:
    release(mesh, reserved_for(mesh, claim, claim.amount))


def reserved_then_spent(mesh: DepartmentMesh, claim: rb.Claim) -> None:
    pay(mesh, reserved_for(mesh, claim, claim.amount), claim.amount)


def reserved_then_changed(mesh: DepartmentMesh, claim: rb.Claim) -> None:
    reservation_id = reserved_for(mesh, claim, claim.amount)
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
