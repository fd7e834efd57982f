"""The error scenarios of reimbursement and travel: their own answers, and those they pass on.

A reason passed on from HR or finance is provoked in a real dependency, in a
state that produces it or with its sidecar configured to refuse (company_meshes.py).
"""

from __future__ import annotations

from collections.abc import Callable

from deptmesh.common.v1 import money_pb2
from deptmesh.reimbursement.v1 import reimbursement_pb2 as rb
from deptmesh.travel.v1 import travel_pb2 as tr
from tests.contracts.company_meshes import DAMAGED_BUDGET, DAMAGED_EMPLOYEE, NO_BUDGET, Meshes
from tests.contracts.department_meshes import DepartmentMesh
from tests.contracts.scenario import CLAIMS, TRIPS, Scenario
from tests.contracts.scenario_calls import (
    TIMEOUT,
    UNKNOWN_EMPLOYEE,
    approve,
    approve_with_finance_holding,
    claims,
    decide_a_decided_claim,
    decide_by_a_peer,
    decide_on_file,
    eur,
    fresh,
    reject,
    request_trip,
    request_trip_twice_with_one_request_id,
    reserved_otherwise,
    reserved_then_changed,
    reserved_then_released,
    reserved_then_spent,
    submit,
    submit_twice_with_one_request_id,
    trips,
)

__all__ = ["PASSED_ON_SCENARIOS"]


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


PASSED_ON_SCENARIOS: tuple[Scenario, ...] = (
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
        approve_with_finance_holding(reserved_otherwise),
    ),
    Scenario(
        CLAIMS + "ApproveClaim",
        "FAILED_PRECONDITION",
        "RESERVATION_RELEASED",
        "finance released the claim's reservation",
        approve_with_finance_holding(reserved_then_released),
    ),
    Scenario(
        CLAIMS + "ApproveClaim",
        "FAILED_PRECONDITION",
        "RESERVATION_CONSUMED",
        "another payout spent the claim's reservation",
        approve_with_finance_holding(reserved_then_spent),
    ),
    Scenario(
        CLAIMS + "ApproveClaim",
        "FAILED_PRECONDITION",
        "AMOUNT_MISMATCH",
        "the claim's reservation was changed in finance's database",
        approve_with_finance_holding(reserved_then_changed),
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
)
