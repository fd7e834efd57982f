"""An in-memory Registry with the same behaviour as Consul's, for tests and one host."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

from deptmesh.registry.model import Health, ServiceInstance


class StaticRegistry:
    def __init__(self, instances: list[ServiceInstance] | None = None) -> None:
        self._instances: dict[str, ServiceInstance] = {}
        self._index = 1
        self._changed = threading.Condition()
        for instance in instances or []:
            self.register(instance)

    def register(self, instance: ServiceInstance) -> None:
        self._update(lambda: self._instances.__setitem__(instance.instance_id, instance))

    def deregister(self, instance_id: str) -> None:
        self._update(lambda: self._instances.pop(instance_id, None))

    def set_health(self, instance_id: str, health: Health) -> None:
        def change() -> None:
            current = self._instances[instance_id]
            self._instances[instance_id] = dataclasses.replace(current, health=health)

        self._update(change)

    def set_draining(self, instance_id: str) -> None:
        self.set_health(instance_id, Health.CRITICAL)

    def resolve(self, service: str) -> list[ServiceInstance]:
        with self._changed:
            return self._passing(service)

    def query(
        self, service: str, index: int, wait_seconds: float
    ) -> tuple[int, list[ServiceInstance]]:
        with self._changed:
            self._changed.wait_for(lambda: self._index > index, timeout=wait_seconds)
            return self._index, self._passing(service)

    def services(self) -> list[ServiceInstance]:
        with self._changed:
            return sorted(self._instances.values(), key=lambda i: (i.service, i.instance_id))

    def _passing(self, service: str) -> list[ServiceInstance]:
        return sorted(
            (
                i
                for i in self._instances.values()
                if i.service == service and i.health is Health.PASSING
            ),
            key=lambda i: i.instance_id,
        )

    def _update(self, change: Callable[[], object]) -> None:
        with self._changed:
            change()
            self._index += 1
            self._changed.notify_all()
