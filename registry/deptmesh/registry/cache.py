"""The endpoints of every service a process calls, kept current by watches.

A service is resolved once, synchronously, the first time it is asked for; from
then on a ServiceWatch keeps it current. When the registry becomes unreachable
the last known endpoints keep being used, up to a staleness cap. A service never
seen fails at once with a message naming it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from deptmesh.registry.model import ServiceInstance
from deptmesh.registry.protocol import Registry, RegistryRefused, RegistryUnavailable
from deptmesh.registry.watch import ServiceWatch

_log = structlog.get_logger("deptmesh.registry")

Listener = Callable[[list[ServiceInstance]], None]


class ServiceUnavailable(Exception):
    """No usable instance of a service is known; the message names the service."""


class EndpointCache:
    def __init__(
        self,
        registry: Registry,
        *,
        staleness_cap_seconds: float = 300.0,
        wait_seconds: float = 5.0,
    ) -> None:
        if staleness_cap_seconds <= 0:
            raise ValueError("staleness_cap_seconds must be positive")
        self._registry = registry
        self._cap = staleness_cap_seconds
        self._wait = wait_seconds
        self._lock = threading.Lock()
        self._watches: dict[str, ServiceWatch] = {}
        self._instances: dict[str, list[ServiceInstance]] = {}
        self._listeners: dict[str, list[Listener]] = {}

    def subscribe(self, service: str, listener: Listener) -> list[ServiceInstance]:
        """The service's instances now; `listener` gets every later change."""
        with self._lock:
            if service not in self._watches:
                self._start_watch(service)
            self._listeners.setdefault(service, []).append(listener)
            return list(self._instances[service])

    def instances(self, service: str) -> list[ServiceInstance]:
        """The known healthy instances; raises ServiceUnavailable when none are usable."""
        with self._lock:
            watch = self._watches.get(service)
            if watch is None:
                self._start_watch(service)
                watch = self._watches[service]
            instances = self._instances[service]
        age = time.monotonic() - watch.last_contact
        if age > self._cap:
            raise ServiceUnavailable(
                f"service {service!r}: endpoints are {age:.0f}s stale (registry unreachable)"
            )
        return instances

    def close(self) -> None:
        with self._lock:
            for watch in self._watches.values():
                watch.stop()
            self._watches.clear()

    def _start_watch(self, service: str) -> None:
        try:
            index, instances = self._registry.query(service, 0, 0)
        except RegistryUnavailable as error:
            raise ServiceUnavailable(
                f"service {service!r} is unknown and the registry is unreachable"
            ) from error
        except RegistryRefused as error:
            raise ServiceUnavailable(f"service {service!r} is unknown: {error}") from error
        self._instances[service] = instances
        watch = ServiceWatch(
            self._registry,
            service,
            lambda changed: self._changed(service, changed),
            wait_seconds=self._wait,
        )
        self._watches[service] = watch
        watch.start(index)

    def _changed(self, service: str, instances: list[ServiceInstance]) -> None:
        with self._lock:
            if instances == self._instances.get(service):
                return  # the index moved for another reason
            self._instances[service] = instances
            listeners = list(self._listeners.get(service, []))
        _log.info("endpoints_changed", service=service, endpoints=[i.endpoint for i in instances])
        for listener in listeners:
            listener(instances)
