"""A department's own database: SQLite by default, PostgreSQL for replicas on several hosts.

    store = FinanceStore(host.db)   # a Path: SQLite; "postgresql://...": PostgreSQL

    database = open_database(target, Schema("finance", (MIGRATION_1,)))
    with database.write() as tx:
        row = tx.fetch_one("SELECT * FROM budgets WHERE cost_center_id = ?", (cc,), for_update=True)
        tx.execute("UPDATE budgets SET ... WHERE cost_center_id = ?", (...))

One schema and one set of statements per store run on both (dialects.py holds
every difference); the guarantees are the same: a write transaction either
commits whole or not at all, a store's read-check-write runs in one, and
transaction waits are bounded by the call's deadline, contention surfacing as
UNAVAILABLE and a deadline that passed before the commit as DEADLINE_EXCEEDED
(time_limits.py).
"""

from deptmesh.services.database.dialects import Dialect
from deptmesh.services.database.schema import Schema
from deptmesh.services.database.target import DatabaseTarget, is_postgres_url, open_database
from deptmesh.services.database.time_limits import Timeouts
from deptmesh.services.database.transaction import Database, Row, Transaction

__all__ = [
    "Database",
    "DatabaseTarget",
    "Dialect",
    "Row",
    "Schema",
    "Timeouts",
    "Transaction",
    "is_postgres_url",
    "open_database",
]
