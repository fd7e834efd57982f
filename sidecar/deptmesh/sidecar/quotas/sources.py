"""Where a service's quota policy and its replica count come from.

- consul_quota_policy: the policy document at `deptmesh/policy/quotas` in
  Consul KV, watched; no document means no quotas (quotas/policy.py's NO_QUOTAS).
- file_quota_policy: the same document in a file, for running without Consul.
- ConsulReplicaCount: how many healthy instances of the service Consul knows,
  watched, so each replica enforces its share of the service-wide rates and the
  shares change as replicas come and go.
"""

from __future__ import annotations

from pathlib import Path

from deptmesh.registry.acl import POLICY_PREFIX
from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.model import ServiceInstance
from deptmesh.registry.watch import ServiceWatch
from deptmesh.sidecar.control_plane import asking_consul
from deptmesh.sidecar.documents import ConsulDocument, FileDocument
from deptmesh.sidecar.quotas.policy import NO_QUOTAS, QuotaPolicy, parse_quota_policy

__all__ = ["QUOTA_POLICY_KEY", "ConsulReplicaCount", "consul_quota_policy", "file_quota_policy"]

# Under the prefix every department's token may read and only the platform's may write.
QUOTA_POLICY_KEY = f"{POLICY_PREFIX}quotas"


def consul_quota_policy(
    registry: ConsulRegistry, key: str = QUOTA_POLICY_KEY
) -> ConsulDocument[QuotaPolicy]:
    return ConsulDocument(registry, key, parse_quota_policy, absent=NO_QUOTAS, name="quota_policy")


def file_quota_policy(path: Path) -> FileDocument[QuotaPolicy]:
    return FileDocument(
        path, lambda content: parse_quota_policy(content.decode()), name="quota_policy"
    )


class ConsulReplicaCount:
    """The number of healthy replicas of `service`; at least 1 (this one is serving)."""

    def __init__(self, registry: ConsulRegistry, service: str) -> None:
        with asking_consul(f"the healthy replicas of {service}"):
            index, instances = registry.query(service, 0, 0)
        self._count = max(1, len(instances))
        self._watch = ServiceWatch(registry, service, self._changed)
        self._watch.start(index)

    def __call__(self) -> int:
        return self._count

    def stop(self) -> None:
        self._watch.stop()

    def _changed(self, instances: list[ServiceInstance]) -> None:
        self._count = max(1, len(instances))
