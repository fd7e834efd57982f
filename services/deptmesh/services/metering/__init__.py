"""Metering: the usage ledger (deptmesh.metering.v1.UsageLedgerService).

Every department's sidecar reports the usage it served here, under its own
identity; each record is counted once by its id (store.py). Statements price a
department's month with the rate card in force that month (pricing.py, pure),
and a closed month's statement is kept and never changes (servicer.py).
"""
