"""One running instance in the registry: how it is described, registered and withdrawn.

The registry checks the instance's grpc.health.v1 on `check_port` (an mTLS
server answers it on a plaintext port serving nothing else) and learns where
Prometheus scrapes it from the `metrics_port` meta.
"""

from __future__ import annotations

import structlog

from deptmesh.registry.model import ServiceInstance
from deptmesh.registry.protocol import Registry, RegistryUnavailable
from deptmesh.sidecar.control_plane import asking_consul

__all__ = ["Registration", "instance_of"]

_log = structlog.get_logger("deptmesh.service")


def instance_of(
    name: str,
    host: str,
    port: int,
    check_port: int = 0,
    metrics_port: int = 0,
    *,
    contract_version: str = "v1",
) -> ServiceInstance:
    """How an instance is registered; `metrics_port` (meta) is where Prometheus scrapes it."""
    metrics = {"metrics_port": str(metrics_port)} if metrics_port else {}
    return ServiceInstance(
        service=name,
        instance_id=f"{name}-{host}-{port}",
        address=host,
        port=port,
        check_port=check_port,
        tags=(f"contract-{contract_version}",),
        meta={"department": name, "contract_version": contract_version, **metrics},
    )


class Registration:
    """`instance` registered in `registry`, until `withdraw()`.

    Registering raises ControlPlaneUnavailable when the registry cannot be asked.
    Leaving is best effort: an instance that cannot tell the registry it is
    draining or gone fails its health check once its server stops, and the
    registry drops it on its own (see deptmesh.registry.consul).
    """

    def __init__(self, registry: Registry, instance: ServiceInstance) -> None:
        self.instance = instance
        self._registry = registry
        with asking_consul(f"registering {instance.instance_id}"):
            registry.register(instance)

    def drain(self) -> None:
        """Tells the registry to stop routing new calls here."""
        try:
            self._registry.set_draining(self.instance.instance_id)
        except RegistryUnavailable as error:
            _log.warning("drain_not_registered", error=str(error))

    def withdraw(self) -> None:
        """Removes the instance from the registry."""
        try:
            self._registry.deregister(self.instance.instance_id)
        except RegistryUnavailable as error:
            _log.warning("deregistration_failed", error=str(error))
