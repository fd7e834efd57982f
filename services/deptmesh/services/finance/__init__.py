"""Finance: budgets, reservations, payouts and the ledger (deptmesh.finance.v1)."""
