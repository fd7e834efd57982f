"""One row of the error scenario table: a declared case of one method, and how to provoke it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tests.contracts.company_meshes import Meshes

__all__ = ["BUDGETS", "CLAIMS", "HR", "LEDGER", "PAYMENTS", "TRIPS", "Scenario"]


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


# The methods' full names begin so.
HR = "deptmesh.hr.v1.EmployeeService."
BUDGETS = "deptmesh.finance.v1.BudgetService."
PAYMENTS = "deptmesh.finance.v1.PaymentService."
CLAIMS = "deptmesh.reimbursement.v1.ReimbursementService."
TRIPS = "deptmesh.travel.v1.TripService."
LEDGER = "deptmesh.metering.v1.UsageLedgerService."
