"""Budgets for the demo company's cost centres (see services/hr/demo_data.py)."""

from __future__ import annotations

from deptmesh.services.finance.store import FinanceStore
from deptmesh.services.money import NANOS_PER_UNIT, Amount

BUDGETS = {
    "CC-EXEC": Amount("EUR", 100_000 * NANOS_PER_UNIT),
    "CC-ENG": Amount("EUR", 50_000 * NANOS_PER_UNIT),
    "CC-FIN": Amount("EUR", 20_000 * NANOS_PER_UNIT),
}


def seed(store: FinanceStore) -> None:
    """Loads the demo budgets into an empty database; leaves a non-empty one alone."""
    store.add_budgets_if_empty(BUDGETS)
