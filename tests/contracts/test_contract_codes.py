"""Each department's contract declares exactly the ErrorInfo reasons its code can answer.

Read from the source (tests/contracts/raised_reasons.py), without running it:

- every reason a department's package can raise, or the database layer under
  it, is declared by its contract (a method's or its service's case) or by the
  mesh (MESH_ERRORS), unless it never leaves the department (INTERNAL_ONLY);
- every reason its contract declares is raised by that code, or passed on from
  a dependency the department calls, which declares it there (reimbursement
  passes finance's INSUFFICIENT_FUNDS on, for example);
- every reason is written so that it can be read: no f-strings, no `+`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from deptmesh.finance.v1 import finance_pb2
from deptmesh.hr.v1 import hr_pb2
from deptmesh.metering.v1 import metering_pb2
from deptmesh.reimbursement.v1 import reimbursement_pb2
from deptmesh.sidecar.declared_errors import MESH_ERRORS, declared_errors
from deptmesh.travel.v1 import travel_pb2
from tests.contracts.raised_reasons import Reasons, raised_reasons

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services" / "deptmesh" / "services"
MESH_REASONS = frozenset(case.reason for case in MESH_ERRORS if case.reason)


def _methods(*services: ServiceDescriptor) -> tuple[MethodDescriptor, ...]:
    return tuple(method for service in services for method in service.methods)


@dataclass(frozen=True)
class Department:
    """A department's package, the methods of its contract, and the methods it calls."""

    name: str
    methods: tuple[MethodDescriptor, ...]
    calls: tuple[MethodDescriptor, ...] = ()
    # Reasons its code raises that never reach a caller, and why.
    internal_only: tuple[tuple[str, str], ...] = ()

    def code_reasons(self) -> Reasons:
        """What its package and the database layer it stores through can raise."""
        own = raised_reasons(SERVICES / self.name, ROOT)
        database = raised_reasons(SERVICES / "database", ROOT)
        for reason, places in database.raised.items():
            own.raised.setdefault(reason, []).extend(places)
        return own

    def declared(self) -> dict[str, list[str]]:
        """Reason -> the methods whose contract declares it."""
        found: dict[str, list[str]] = {}
        for method in self.methods:
            for case in declared_errors(method):
                if case.reason:
                    found.setdefault(case.reason, []).append(method.full_name)
        return found

    def passed_on(self) -> frozenset[str]:
        """The reasons the methods it calls declare, and the mesh's: what it can pass on."""
        reasons = {case.reason for method in self.calls for case in declared_errors(method)}
        return frozenset(reasons - {""}) | MESH_REASONS


HR = hr_pb2.DESCRIPTOR.services_by_name["EmployeeService"]
BUDGETS = finance_pb2.DESCRIPTOR.services_by_name["BudgetService"]
PAYMENTS = finance_pb2.DESCRIPTOR.services_by_name["PaymentService"]
DEPARTMENTS = (
    Department("hr", _methods(HR)),
    Department("finance", _methods(BUDGETS, PAYMENTS)),
    Department(
        "reimbursement",
        _methods(reimbursement_pb2.DESCRIPTOR.services_by_name["ReimbursementService"]),
        calls=(
            HR.methods_by_name["GetEmployee"],
            BUDGETS.methods_by_name["ReserveFunds"],
            PAYMENTS.methods_by_name["Payout"],
        ),
        internal_only=(
            (
                "CLAIM_NOT_APPROVED",
                "ClaimStore.mark_paid's refusal of a claim paid concurrently, which"
                " ClaimWorkflow.pay catches and answers with the paid claim",
            ),
        ),
    ),
    Department(
        "travel",
        _methods(travel_pb2.DESCRIPTOR.services_by_name["TripService"]),
        calls=(HR.methods_by_name["GetEmployee"],),
    ),
    Department(
        "metering", _methods(metering_pb2.DESCRIPTOR.services_by_name["UsageLedgerService"])
    ),
)
BY_NAME = {department.name: department for department in DEPARTMENTS}


@pytest.fixture(params=[department.name for department in DEPARTMENTS])
def department(request: pytest.FixtureRequest) -> Department:
    return BY_NAME[request.param]


class TestContractCodes:
    def test_every_reason_the_code_can_raise_is_declared(self, department):
        """A reason the department's code (or its database layer) raises is declared by
        its contract or the mesh, unless it never leaves the department."""
        raised = department.code_reasons().raised
        declared = set(department.declared()) | MESH_REASONS
        internal = {reason for reason, _ in department.internal_only}
        undeclared = {
            reason: places
            for reason, places in raised.items()
            if reason not in declared and reason not in internal
        }
        assert undeclared == {}, (
            f"{department.name} can answer reasons its contract does not declare; declare"
            f" each in its .proto (an errors or service_errors option): {undeclared}"
        )

    def test_every_declared_reason_is_raised_or_passed_on(self, department):
        """A reason the contract declares is raised by the department's code, or passed
        on from a method it calls that declares it."""
        raisable = set(department.code_reasons().raised) | department.passed_on()
        never = {
            reason: methods
            for reason, methods in department.declared().items()
            if reason not in raisable
        }
        assert never == {}, (
            f"{department.name}'s contract declares reasons nothing answers; remove them"
            f" or raise them: {never}"
        )

    def test_internal_reasons_are_really_raised(self, department):
        """What INTERNAL_ONLY excuses is raised by the code: the list stays honest."""
        raised = department.code_reasons().raised
        assert {reason for reason, _ in department.internal_only} <= set(raised)

    def test_every_reason_is_written_as_a_literal(self, department):
        """No reason is built from an f-string or `+`: each can be read, and declared."""
        assert department.code_reasons().unreadable == []
