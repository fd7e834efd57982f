"""The company's quota tiers for its departments, as company_policy.toml states it.

The `[quotas]` section of the company's policy file
(deptmesh.services.company_policy), for code that wants only the quotas:
`apply` writes the policy to Consul KV, where every service watches it;
`python -m deptmesh.services.quota_tiers PATH` writes it as a file for
`--quota-policy-file PATH` without Consul. The document's schema is in
deptmesh.sidecar.quotas.policy. `deptmesh policy apply` applies the whole file
(intentions too) with check-and-set; prefer it.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.services.company_policy import company_policy
from deptmesh.sidecar.quotas.policy import parse_quota_policy
from deptmesh.sidecar.quotas.sources import QUOTA_POLICY_KEY

__all__ = ["QUOTA_POLICY", "apply", "document", "main"]

_QUOTAS = company_policy().quotas
if _QUOTAS is None:  # the shipped file always has them; a test of the file says so
    raise RuntimeError("company_policy.toml has no [quotas] section")
QUOTA_POLICY: dict[str, Any] = dict(_QUOTAS)


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
