"""The company's access policy for the three departments, as the platform team sets it.

Intentions (who may call whom; everything else is denied) and the method rules
document (which callers may use which methods). `apply` writes both to Consul;
the services watch them and apply changes without a restart.
"""

from __future__ import annotations

import json

from registry.consul import ConsulRegistry
from sidecar.policy_sources import METHOD_RULES_KEY

INTENTIONS = (
    ("reimbursement", "hr", "allow"),
    ("reimbursement", "finance", "allow"),
    ("finance", "hr", "allow"),
    ("hr", "finance", "allow"),  # e.g. budget reads; Payout is ruled out below
)

METHOD_RULES = {
    "methods": {
        "/deptmesh.finance.v1.PaymentService/Payout": ["reimbursement"],
        "/deptmesh.finance.v1.BudgetService/ReserveFunds": ["reimbursement"],
        "/deptmesh.finance.v1.BudgetService/ReleaseReservation": ["reimbursement"],
    }
}


def apply(registry: ConsulRegistry, *extra: tuple[str, str, str]) -> None:
    """Writes the intentions (plus `extra` ones) and the method rules to Consul."""
    for source, destination, action in (*INTENTIONS, *extra):
        registry.set_intention(source, destination, action)
    registry.kv_put(METHOD_RULES_KEY, json.dumps(METHOD_RULES))
