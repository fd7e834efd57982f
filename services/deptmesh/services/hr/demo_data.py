"""A small company for the demo and the tests: a CEO, engineering and finance."""

from __future__ import annotations

from deptmesh.services.hr.store import CostCenter, Employee, HrStore

COST_CENTERS = (
    CostCenter("CC-EXEC", "Executive office", "E1000"),
    CostCenter("CC-ENG", "Engineering", "E1001"),
    CostCenter("CC-FIN", "Finance", "E1004"),
)

EMPLOYEES = (
    Employee("E1000", "Ada Lovelace", "ada@example.com", "", "CC-EXEC", "Chief Executive"),
    Employee("E1001", "Grace Hopper", "grace@example.com", "E1000", "CC-ENG", "VP Engineering"),
    Employee("E1002", "Alan Turing", "alan@example.com", "E1001", "CC-ENG", "Engineer"),
    Employee("E1003", "Katherine Johnson", "katherine@example.com", "E1001", "CC-ENG", "Engineer"),
    Employee("E1004", "Edsger Dijkstra", "edsger@example.com", "E1000", "CC-FIN", "Finance Lead"),
)


def seed(store: HrStore) -> None:
    """Loads the demo company into an empty database; leaves a non-empty one alone."""
    store.add_company_if_empty(COST_CENTERS, EMPLOYEES)  # managers before their reports
