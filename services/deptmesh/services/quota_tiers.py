"""The company's quota tiers for its departments, as the platform team sets them.

Reimbursement's calls are the business-critical flow; anything else is
standard; scans of the ledger and of all trips are batch work for everyone
(they cost 10 and 5 tokens each, declared with the method in protos/).
`apply` writes the policy to Consul KV, where every service watches it;
`python -m deptmesh.services.quota_tiers PATH` writes it as a file for
`--quota-policy-file PATH` without Consul. The document's schema is in
deptmesh.sidecar.quotas.policy.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.sidecar.quotas.policy import parse_quota_policy
from deptmesh.sidecar.quotas.sources import QUOTA_POLICY_KEY

QUOTA_POLICY = {
    "tiers": {
        "critical": {"rate": 200, "burst": 400, "max_in_flight": 64},
        "standard": {"rate": 50, "burst": 100, "max_in_flight": 16},
        "batch": {"rate": 20, "burst": 40, "max_in_flight": 2},
    },
    "default_tier": "standard",
    "services": {
        "hr": {"callers": {"reimbursement": "critical", "finance": "critical"}},
        "finance": {
            "callers": {"reimbursement": "critical"},
            "methods": {"/deptmesh.finance.v1.PaymentService/ListLedgerEntries": {"*": "batch"}},
        },
        "travel": {"methods": {"/deptmesh.travel.v1.TripService/ListTrips": {"*": "batch"}}},
    },
}


def document() -> str:
    text = json.dumps(QUOTA_POLICY, indent=2)
    parse_quota_policy(text)  # never publish what the services would reject
    return text


def apply(registry: ConsulRegistry) -> None:
    """Writes the quota policy to Consul KV; `registry` asks with the platform's token, the
    only one that may write under deptmesh/policy/."""
    registry.kv_put(QUOTA_POLICY_KEY, document())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deptmesh.services.quota_tiers", description="write the quota policy file"
    )
    parser.add_argument("path", type=Path, help="where to write the policy file")
    args = parser.parse_args(argv)
    args.path.write_text(document() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
