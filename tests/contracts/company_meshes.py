"""The meshes the error scenarios run in, each started the first time a scenario needs it.

- `healthy`: HR, finance, reimbursement, travel and the usage ledger, as in the
  demo, plus three states a real company gets into: an employee in a cost centre
  finance has no budget for (E2001, CC-LAB), an employee whose cost centre's
  budget row is damaged (E2002, CC-ODD), and an employee whose HR row is damaged
  (E9001: its name is not text), so that asking about it fails inside HR.
- `hr_gone`: HR is registered but its process no longer answers.
- `hr_denies`: HR's policy lets nobody call it.
- `hr_throttles`: HR's quota allows one call per thousand seconds, spent already.
- `hr_busy`: HR runs one call per caller at a time, and reimbursement's is held
  (a stand-in HR: stand_in_hr.py says why).
- `hr_refuses_questions`: an HR that calls every question malformed (a stand-in,
  stand_in_hr.py says why).
- `hr_foreign`, `finance_foreign`: that department accepts callers of another
  trust domain only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import grpc

from deptmesh.hr.v1 import hr_pb2, hr_pb2_grpc
from deptmesh.services.finance.app import FINANCE
from deptmesh.services.hr.app import HR
from deptmesh.services.hr.store import CostCenter, Employee, HrStore
from deptmesh.services.metering.app import METERING
from deptmesh.services.reimbursement.app import REIMBURSEMENT
from deptmesh.services.travel.app import TRAVEL
from tests.contracts.department_meshes import (
    DepartmentMesh,
    deny_everyone,
    foreign_trust_domain,
    one_call_at_a_time,
    one_call_per_thousand_seconds,
)
from tests.contracts.stand_in_hr import HoldingHr, holding_hr, refusing_hr

__all__ = ["DAMAGED_BUDGET", "DAMAGED_EMPLOYEE", "NO_BUDGET", "Meshes"]

# Employees of the healthy mesh beyond the demo company's.
NO_BUDGET = Employee("E2001", "Lin Lab", "lin@example.com", "E1001", "CC-LAB", "Researcher")
DAMAGED_BUDGET = Employee("E2002", "Odd One", "odd@example.com", "E1001", "CC-ODD", "Engineer")
DAMAGED_EMPLOYEE = "E9001"

# Reimbursement's payout retrier, kept out of the way: scenarios pay inline or not at all.
_NO_RETRIES = ("--payout-retry-seconds", "3600")


def _add_employees(mesh: DepartmentMesh) -> None:
    store = HrStore(mesh.database("hr"))
    try:
        for cost_center in ("CC-LAB", "CC-ODD"):
            store.add_cost_center(CostCenter(cost_center, cost_center, "E1001"))
        store.add_employee(NO_BUDGET)
        store.add_employee(DAMAGED_BUDGET)
    finally:
        store.close()
    with closing(sqlite3.connect(mesh.database("hr"))) as hr, hr:
        # A BLOB stays a BLOB in a TEXT column: not valid UTF-8, it cannot be a name.
        hr.execute(
            "INSERT INTO employees VALUES (?, ?, ?, ?, ?, ?)",
            (DAMAGED_EMPLOYEE, b"\xff\xfe", "e9001@example.com", "E1001", "CC-ENG", "Engineer"),
        )
    with closing(sqlite3.connect(mesh.database("finance"))) as finance, finance:
        # Text where a number of nanos belongs: SQLite keeps it, finance cannot add it up.
        finance.execute(
            "INSERT INTO budgets (cost_center_id, currency, allocated_nanos) VALUES (?, ?, ?)",
            ("CC-ODD", "EUR", "plenty"),
        )


class Meshes:
    """Each mesh started on first use, under `root`; `close` drains them all."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._started: dict[str, DepartmentMesh] = {}
        self._holding: HoldingHr | None = None
        self._held_call: grpc.Future | None = None  # kept: a dropped future is cancelled

    def _mesh(self, name: str, build: Callable[[DepartmentMesh], None]) -> DepartmentMesh:
        if name not in self._started:
            mesh = DepartmentMesh(self._root / name)
            self._started[name] = mesh  # closed with the others even if `build` fails
            build(mesh)
        return self._started[name]

    @property
    def healthy(self) -> DepartmentMesh:
        def build(mesh: DepartmentMesh) -> None:
            for department in (HR, FINANCE, TRAVEL, METERING):
                mesh.start(department)
            mesh.start(REIMBURSEMENT, flags=_NO_RETRIES)
            _add_employees(mesh)

        return self._mesh("healthy", build)

    @property
    def hr_gone(self) -> DepartmentMesh:
        def build(mesh: DepartmentMesh) -> None:
            mesh.start(HR).server.stop(0)  # stopped, still registered: it died
            mesh.start(REIMBURSEMENT, flags=_NO_RETRIES)
            mesh.start(TRAVEL)

        return self._mesh("hr_gone", build)

    @property
    def hr_denies(self) -> DepartmentMesh:
        def build(mesh: DepartmentMesh) -> None:
            mesh.start(HR, policy=deny_everyone())
            mesh.start(REIMBURSEMENT, flags=_NO_RETRIES)
            mesh.start(TRAVEL)

        return self._mesh("hr_denies", build)

    @property
    def hr_throttles(self) -> DepartmentMesh:
        def build(mesh: DepartmentMesh) -> None:
            mesh.start(HR, quota_policy=one_call_per_thousand_seconds())
            mesh.start(REIMBURSEMENT, flags=_NO_RETRIES)
            # Reimbursement's one call, spent: every call of its from now on is throttled.
            employees = mesh.stub(hr_pb2_grpc.EmployeeServiceStub, "hr", caller="reimbursement")
            employees.GetEmployee(hr_pb2.GetEmployeeRequest(employee_id="E1002"), timeout=5)

        return self._mesh("hr_throttles", build)

    @property
    def hr_busy(self) -> DepartmentMesh:
        def build(mesh: DepartmentMesh) -> None:
            department, self._holding = holding_hr()
            mesh.start(department, quota_policy=one_call_at_a_time())
            mesh.start(REIMBURSEMENT, flags=_NO_RETRIES)
            # A call of reimbursement's own, held in HR: the only one it may run there.
            employees = mesh.stub(hr_pb2_grpc.EmployeeServiceStub, "hr", caller="reimbursement")
            self._held_call = employees.GetEmployee.future(
                hr_pb2.GetEmployeeRequest(employee_id="E1002"), timeout=60
            )
            assert self._holding.held.wait(10), "the stand-in HR never received the held call"

        return self._mesh("hr_busy", build)

    @property
    def hr_refuses_questions(self) -> DepartmentMesh:
        def build(mesh: DepartmentMesh) -> None:
            mesh.start(refusing_hr())
            mesh.start(REIMBURSEMENT, flags=_NO_RETRIES)
            mesh.start(TRAVEL)

        return self._mesh("hr_refuses_questions", build)

    @property
    def hr_foreign(self) -> DepartmentMesh:
        def build(mesh: DepartmentMesh) -> None:
            mesh.start(HR, identity=foreign_trust_domain("hr"))
            mesh.start(REIMBURSEMENT, flags=_NO_RETRIES)
            mesh.start(TRAVEL)

        return self._mesh("hr_foreign", build)

    @property
    def finance_foreign(self) -> DepartmentMesh:
        def build(mesh: DepartmentMesh) -> None:
            mesh.start(HR)
            mesh.start(FINANCE, identity=foreign_trust_domain("finance"))
            mesh.start(REIMBURSEMENT, flags=_NO_RETRIES)

        return self._mesh("finance_foreign", build)

    def close(self) -> None:
        if self._holding is not None:
            self._holding.release()
        for mesh in self._started.values():
            mesh.close()
