"""Per-caller quotas by tier: token buckets and in-flight limits, service-wide rates.

policy.py is the platform team's policy, validated (pure); buckets.py the
per-caller state (pure); stage.py the quota stage of the server chain;
sources.py where the policy and the replica count come from.
"""

from deptmesh.sidecar.quotas.buckets import CallerBuckets, Limit, Throttle
from deptmesh.sidecar.quotas.policy import NO_QUOTAS, Limits, QuotaPolicy, Tier, parse_quota_policy
from deptmesh.sidecar.quotas.sources import (
    QUOTA_POLICY_KEY,
    ConsulReplicaCount,
    consul_quota_policy,
    file_quota_policy,
)
from deptmesh.sidecar.quotas.stage import (
    REMAINING_KEY,
    QuotaPolicySource,
    QuotaStage,
    method_cost,
)

__all__ = [
    "NO_QUOTAS",
    "QUOTA_POLICY_KEY",
    "REMAINING_KEY",
    "CallerBuckets",
    "ConsulReplicaCount",
    "Limit",
    "Limits",
    "QuotaPolicy",
    "QuotaPolicySource",
    "QuotaStage",
    "Throttle",
    "Tier",
    "consul_quota_policy",
    "file_quota_policy",
    "method_cost",
    "parse_quota_policy",
]
