"""The Registry interface: ConsulRegistry in production, StaticRegistry in memory."""

from __future__ import annotations

from typing import Protocol

from deptmesh.registry.model import ServiceInstance


class RegistryError(Exception):
    """The registry did not do what it was asked; what was known before may still be used."""


class RegistryUnavailable(RegistryError):
    """The registry could not be asked (unreachable, timed out, no leader); retrying may work."""


class RegistryRefused(RegistryError):
    """The registry refused this process's token: missing, unknown or revoked, or without
    the permission. The message names what was refused and never holds the token."""


class Registry(Protocol):
    def register(self, instance: ServiceInstance) -> None:
        """Adds an instance; the registry checks its grpc.health.v1 from then on."""

    def deregister(self, instance_id: str) -> None:
        """Removes an instance."""

    def set_draining(self, instance_id: str) -> None:
        """Stops routing new calls to an instance that is about to stop."""

    def resolve(self, service: str) -> list[ServiceInstance]:
        """The healthy instances of a service now."""

    def query(
        self, service: str, index: int, wait_seconds: float
    ) -> tuple[int, list[ServiceInstance]]:
        """Like resolve, but waits up to `wait_seconds` for a change after `index`.

        Returns the new index and the healthy instances; raises
        RegistryUnavailable when the registry cannot be reached and
        RegistryRefused when it refuses the token.
        """

    def services(self) -> list[ServiceInstance]:
        """Every registered instance of every service, healthy or not."""
