"""HrStore: employees, reporting lines and the demo company."""

from __future__ import annotations

import pytest

from services.hr import demo_data
from services.hr.store import Employee, HrStore
from services.pagination import Page


@pytest.fixture
def store(tmp_path):
    store = HrStore(tmp_path / "hr.db")
    demo_data.seed(store)
    yield store
    store.close()


class TestHrStore:
    def test_seed_is_idempotent(self, store):
        """Seeding a non-empty database adds nothing."""
        demo_data.seed(store)
        assert len(store.list_employees(Page(100, None), "")) == len(demo_data.EMPLOYEES)

    def test_list_filters_by_cost_center_after_a_key(self, store):
        """Listing returns the cost centre's employees after the given id, in id order."""
        listed = store.list_employees(Page(10, "E1001"), "CC-ENG")
        assert [e.employee_id for e in listed] == ["E1002", "E1003"]

    def test_manager_chain(self, store):
        """The chain goes from the direct manager up to the top; the top has none."""
        alan = store.get_employee("E1002")
        assert [m.employee_id for m in store.manager_chain(alan)] == ["E1001", "E1000"]
        assert store.manager_chain(store.get_employee("E1000")) == []

    def test_broken_reporting_line_is_an_error(self, store):
        """A manager that does not exist is reported, not silently cut short."""
        orphan = Employee("E2000", "Orphan", "o@example.com", "E9999", "CC-ENG", "Temp")
        with pytest.raises(RuntimeError, match="broken reporting line"):
            store.manager_chain(orphan)
