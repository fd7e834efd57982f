"""Finance: budgets, reservations and payouts (deptmesh.finance.v1 Budget/PaymentService)."""
