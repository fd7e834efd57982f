"""The service catalog as Consul holds it: each department's instances, their health and
contract version."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.model import Health, ServiceInstance
from deptmesh.registry.protocol import RegistryError
from deptmesh.services.portal.unavailable import SourceUnavailable

__all__ = ["CatalogEntry", "read_catalog"]


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    department: str
    instances: tuple[ServiceInstance, ...]

    @property
    def passing(self) -> int:
        return sum(1 for instance in self.instances if instance.health is Health.PASSING)

    @property
    def contract_versions(self) -> tuple[str, ...]:
        """The versions its instances registered (`contract_version` meta), sorted."""
        versions = {instance.meta.get("contract_version", "") for instance in self.instances}
        return tuple(sorted(version for version in versions if version))


def read_catalog(registry: ConsulRegistry) -> list[CatalogEntry]:
    """Every service of the catalog, by name (SourceUnavailable when Consul does not answer)."""
    try:
        instances: Sequence[ServiceInstance] = registry.services()
    except RegistryError as error:
        raise SourceUnavailable(f"Consul's catalog cannot be read: {error}") from None
    grouped: dict[str, list[ServiceInstance]] = {}
    for instance in instances:
        grouped.setdefault(instance.service, []).append(instance)
    return [CatalogEntry(name, tuple(found)) for name, found in sorted(grouped.items())]
