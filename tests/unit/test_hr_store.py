"""deptmesh.services.hr.store: HR's database, on a real SQLite file and a real PostgreSQL
database per test."""

from __future__ import annotations

import pytest

from deptmesh.services.hr import demo_data
from deptmesh.services.hr.store import Employee, HrStore
from deptmesh.services.pagination import Page


@pytest.fixture
def store(database_target):
    store = HrStore(database_target)
    demo_data.seed(store)
    yield store
    store.close()


def _ids(employees: list[Employee]) -> list[str]:
    return [e.employee_id for e in employees]


class TestHrStore:
    def test_new_database_is_empty(self, database_target):
        """A freshly created database has no employees."""
        store = HrStore(database_target)
        try:
            assert store.is_empty()
        finally:
            store.close()

    def test_seed_loads_demo_company(self, store):
        """Seeding loads every demo employee and cost centre."""
        assert not store.is_empty()
        assert store.list_employees(Page(100, None), "") == list(demo_data.EMPLOYEES)
        for cost_center in demo_data.COST_CENTERS:
            assert store.get_cost_center(cost_center.cost_center_id) == cost_center

    def test_seed_is_idempotent(self, store):
        """Seeding a second time adds nothing and does not fail."""
        demo_data.seed(store)

        assert store.list_employees(Page(100, None), "") == list(demo_data.EMPLOYEES)

    def test_data_persists_across_reopen(self, database_target):
        """What one store wrote is there when the database is opened again, and not seeded
        twice."""
        first = HrStore(database_target)
        demo_data.seed(first)
        first.close()

        second = HrStore(database_target)
        try:
            demo_data.seed(second)
            assert second.list_employees(Page(100, None), "") == list(demo_data.EMPLOYEES)
        finally:
            second.close()

    def test_get_employee(self, store):
        """An employee is returned with every field, the top of the company with no manager."""
        assert store.get_employee("E1002") == Employee(
            "E1002", "Alan Turing", "alan@example.com", "E1001", "CC-ENG", "Engineer"
        )
        assert store.get_employee("E1000").manager_id == ""

    def test_get_unknown(self, store):
        """Unknown ids give None."""
        assert store.get_employee("E9999") is None
        assert store.get_cost_center("CC-NOPE") is None

    def test_list_first_page_has_one_extra(self, store):
        """A page returns up to size + 1 employees in id order; the extra one says there is more."""
        assert _ids(store.list_employees(Page(2, None), "")) == ["E1000", "E1001", "E1002"]

    def test_list_after(self, store):
        """A page starts strictly after its position."""
        assert _ids(store.list_employees(Page(2, "E1001"), "")) == ["E1002", "E1003", "E1004"]
        assert _ids(store.list_employees(Page(2, "E1003"), "")) == ["E1004"]
        assert store.list_employees(Page(2, "E1004"), "") == []

    def test_list_by_cost_center(self, store):
        """A cost centre filter returns only the employees it pays for, paginated."""
        assert _ids(store.list_employees(Page(100, None), "CC-ENG")) == ["E1001", "E1002", "E1003"]
        assert _ids(store.list_employees(Page(1, "E1001"), "CC-ENG")) == ["E1002", "E1003"]
        assert _ids(store.list_employees(Page(100, None), "CC-FIN")) == ["E1004"]
        assert store.list_employees(Page(100, None), "CC-NOPE") == []

    def test_manager_chain_order(self, store):
        """The chain lists the direct manager first and the top of the company last."""
        employee = store.get_employee("E1002")

        assert _ids(store.manager_chain(employee)) == ["E1001", "E1000"]

    def test_top_of_company_has_empty_chain(self, store):
        """The top of the company has no managers."""
        assert store.manager_chain(store.get_employee("E1000")) == []

    def test_cycle_is_an_error(self, store):
        """A reporting line that loops raises instead of running forever."""
        store.add_employee(Employee("E2000", "Loop", "loop@example.com", "E2000", "CC-ENG", "X"))

        with pytest.raises(RuntimeError, match="E2000"):
            store.manager_chain(store.get_employee("E2000"))
