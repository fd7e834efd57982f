"""What the registry knows about a running service instance."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Health(StrEnum):
    PASSING = "passing"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True, slots=True, eq=True)
class ServiceInstance:
    """One instance of a service: where it listens and what it is."""

    service: str
    instance_id: str
    address: str
    port: int
    tags: tuple[str, ...] = ()
    # department and contract_version, plus anything a team adds.
    meta: Mapping[str, str] = field(default_factory=dict, hash=False)
    health: Health = Health.PASSING
    # Where Consul calls grpc.health.v1; 0 means the service port itself.
    check_port: int = 0

    @property
    def endpoint(self) -> str:
        return f"{self.address}:{self.port}"

    @property
    def department(self) -> str:
        return self.meta.get("department", "")

    @property
    def contract_version(self) -> str:
        return self.meta.get("contract_version", "")
