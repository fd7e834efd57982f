"""One running instance in the registry: how it is described, registered, kept and withdrawn.

The registry checks the instance's grpc.health.v1 on `check_port` (an mTLS
server answers it on a plaintext port serving nothing else) and learns where
Prometheus scrapes it from the `metrics_port` meta.

A department registers through its own host's Consul agent. An agent that
dies and comes back without its state (a new machine image, an emptied data
folder, a dev agent) has forgotten the instance, while the instance itself
never stopped serving: so the host asks its agent once a second whether it
still holds the instance, and registers it again when it does not.
"""

from __future__ import annotations

import threading

import structlog

from deptmesh.registry.consul import ConsulRegistry
from deptmesh.registry.model import ServiceInstance
from deptmesh.registry.protocol import Registry, RegistryError, RegistryRefused
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
    """`instance` registered in `registry`, until `drain()` or `withdraw()`.

    Registering raises ControlPlaneUnavailable when the registry cannot be
    asked and ControlPlaneRefused when it refuses the token. With a Consul
    registry the registration is kept: registered again whenever the agent
    turns out to have forgotten it (checked every `keep_interval` seconds).
    Leaving is best effort: an instance that cannot tell the registry it is
    draining or gone fails its health check once its server stops, and the
    registry drops it on its own (see deptmesh.registry.consul).
    """

    def __init__(
        self, registry: Registry, instance: ServiceInstance, *, keep_interval: float = 1.0
    ) -> None:
        self.instance = instance
        self._registry = registry
        with asking_consul(f"registering {instance.instance_id}"):
            registry.register(instance)
        # Held while the keeper registers again, so that once leaving has begun
        # nothing puts the instance back.
        self._lock = threading.Lock()
        self._leaving = threading.Event()
        if isinstance(registry, ConsulRegistry):
            threading.Thread(
                target=self._keep,
                args=(registry, keep_interval),
                name=f"keep-{instance.instance_id}",
                daemon=True,
            ).start()

    def drain(self) -> None:
        """Tells the registry to stop routing new calls here."""
        self._leave()
        try:
            self._registry.set_draining(self.instance.instance_id)
        except RegistryError as error:
            _log.warning("drain_not_registered", error=str(error))

    def withdraw(self) -> None:
        """Removes the instance from the registry."""
        self._leave()
        try:
            self._registry.deregister(self.instance.instance_id)
        except RegistryError as error:
            _log.warning("deregistration_failed", error=str(error))

    def _leave(self) -> None:
        with self._lock:
            self._leaving.set()

    def _keep(self, registry: ConsulRegistry, interval: float) -> None:
        """Registers the instance again whenever the agent no longer holds it; each kind
        of trouble is logged once, when it starts. A refusal counts when it happens
        twice in a row (an agent that has just started refuses every token for a
        moment); then the agent is asked less and less often, up to every 30 intervals."""
        instance_id = self.instance.instance_id
        unreachable = False
        refusals = 0
        pause = interval
        while not self._leaving.wait(pause):
            pause = interval
            try:
                if not registry.holds(instance_id):
                    with self._lock:
                        if self._leaving.is_set():
                            return
                        registry.register(self.instance)
                    _log.warning(
                        "registered_again", instance=instance_id, reason="the agent forgot it"
                    )
                unreachable, refusals = False, 0
            except RegistryRefused as error:
                refusals += 1
                if refusals == 2:
                    _log.error("registration_refused", instance=instance_id, error=str(error))
                pause = interval * min(2 ** (refusals - 1), 30)
            except RegistryError as error:
                if not unreachable:
                    _log.warning(
                        "registration_unverifiable", instance=instance_id, error=str(error)
                    )
                unreachable = True
