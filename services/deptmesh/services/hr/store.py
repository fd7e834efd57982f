"""HR's database: employees and cost centres, on SQLite or PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from deptmesh.services.database import DatabaseTarget, Row, Schema, Transaction, open_database
from deptmesh.services.pagination import Page

_TABLES = """
CREATE TABLE IF NOT EXISTS cost_centers (
    cost_center_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    owner_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS employees (
    employee_id TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    manager_id TEXT REFERENCES employees (employee_id),
    cost_center_id TEXT NOT NULL REFERENCES cost_centers (cost_center_id),
    title TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS employees_by_cost_center ON employees (cost_center_id, employee_id);
"""

SCHEMA = Schema("hr", (_TABLES,))

# A reporting line longer than this is a data error (most likely a cycle).
MAX_CHAIN_LENGTH = 64


@dataclass(frozen=True, slots=True)
class Employee:
    employee_id: str
    display_name: str
    email: str
    manager_id: str
    cost_center_id: str
    title: str


@dataclass(frozen=True, slots=True)
class CostCenter:
    cost_center_id: str
    name: str
    owner_id: str


def _employee(row: Row) -> Employee:
    return Employee(
        employee_id=row["employee_id"],
        display_name=row["display_name"],
        email=row["email"],
        manager_id=row["manager_id"] or "",
        cost_center_id=row["cost_center_id"],
        title=row["title"],
    )


class HrStore:
    def __init__(self, target: DatabaseTarget) -> None:
        self._db = open_database(target, SCHEMA)

    def close(self) -> None:
        self._db.close()

    def is_empty(self) -> bool:
        with self._db.read() as tx:
            return tx.fetch_one("SELECT 1 FROM employees LIMIT 1") is None

    def add_cost_center(self, cost_center: CostCenter) -> None:
        with self._db.write() as tx:
            _insert_cost_center(tx, cost_center)

    def add_employee(self, employee: Employee) -> None:
        with self._db.write() as tx:
            _insert_employee(tx, employee)

    def add_company_if_empty(
        self, cost_centers: Iterable[CostCenter], employees: Iterable[Employee]
    ) -> None:
        """Adds a company (managers before their reports) to a database that has no
        employees, in one transaction. Replicas starting together on one database may all
        call it: whichever commits first adds it, the others add nothing and fail on nothing."""
        with self._db.write() as tx:
            if tx.fetch_one("SELECT 1 FROM employees LIMIT 1") is not None:
                return
            for cost_center in cost_centers:
                _insert_cost_center(tx, cost_center, " ON CONFLICT (cost_center_id) DO NOTHING")
            for employee in employees:
                _insert_employee(tx, employee, " ON CONFLICT (employee_id) DO NOTHING")

    def get_employee(self, employee_id: str) -> Employee | None:
        with self._db.read() as tx:
            found = tx.fetch_one("SELECT * FROM employees WHERE employee_id = ?", (employee_id,))
        return _employee(found) if found else None

    def list_employees(self, page: Page, cost_center_id: str) -> list[Employee]:
        """Up to page.size + 1 employees after page.after (the extra one says there is more)."""
        query = "SELECT * FROM employees WHERE employee_id > ?"
        params: list[object] = [page.after or ""]
        if cost_center_id:
            query += " AND cost_center_id = ?"
            params.append(cost_center_id)
        query += " ORDER BY employee_id LIMIT ?"
        params.append(page.size + 1)
        with self._db.read() as tx:
            return [_employee(row) for row in tx.fetch_all(query, params)]

    def manager_chain(self, employee: Employee) -> list[Employee]:
        """The direct manager first, the top of the company last."""
        chain: list[Employee] = []
        seen = {employee.employee_id}
        manager_id = employee.manager_id
        while manager_id:
            manager = self.get_employee(manager_id)
            if manager is None or manager_id in seen or len(chain) >= MAX_CHAIN_LENGTH:
                raise RuntimeError(f"broken reporting line above {employee.employee_id}")
            chain.append(manager)
            seen.add(manager_id)
            manager_id = manager.manager_id
        return chain

    def get_cost_center(self, cost_center_id: str) -> CostCenter | None:
        with self._db.read() as tx:
            row = tx.fetch_one(
                "SELECT * FROM cost_centers WHERE cost_center_id = ?", (cost_center_id,)
            )
        if row is None:
            return None
        return CostCenter(row["cost_center_id"], row["name"], row["owner_id"])


def _insert_cost_center(tx: Transaction, cost_center: CostCenter, on_conflict: str = "") -> None:
    tx.execute(
        "INSERT INTO cost_centers (cost_center_id, name, owner_id) VALUES (?, ?, ?)" + on_conflict,
        (cost_center.cost_center_id, cost_center.name, cost_center.owner_id),
    )


def _insert_employee(tx: Transaction, employee: Employee, on_conflict: str = "") -> None:
    tx.execute(
        "INSERT INTO employees (employee_id, display_name, email, manager_id,"
        " cost_center_id, title) VALUES (?, ?, ?, ?, ?, ?)" + on_conflict,
        (
            employee.employee_id,
            employee.display_name,
            employee.email,
            employee.manager_id or None,
            employee.cost_center_id,
            employee.title,
        ),
    )
