"""The endpoints of every service a process calls, kept current by watches.

A service is resolved once, synchronously, the first time it is asked for; from
then on a ServiceWatch keeps it current. When the registry becomes unreachable
the last known endpoints keep being used, up to a staleness cap. A service never
seen fails at once with a message naming it.

A service whose healthy instances all vanish at once keeps its last known
endpoints for a grace period (`empty_grace_seconds`): Consul reports none for a
moment when a host's agent comes back without its state (it deregisters what
it forgot before the host registers it again) or when the only instance's
check flaps, while the instances most likely still serve. A channel ejects an
endpoint that is really gone when its connection fails; an empty answer that
lasts the grace period is believed.
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
        empty_grace_seconds: float = 10.0,
    ) -> None:
        if staleness_cap_seconds <= 0:
            raise ValueError("staleness_cap_seconds must be positive")
        if empty_grace_seconds < 0:
            raise ValueError("empty_grace_seconds must be 0 or more")
        self._empty_grace = empty_grace_seconds
        self._registry = registry
        self._cap = staleness_cap_seconds
        self._wait = wait_seconds
        self._lock = threading.Lock()
        self._watches: dict[str, ServiceWatch] = {}
        self._instances: dict[str, list[ServiceInstance]] = {}
        self._listeners: dict[str, list[Listener]] = {}
        # Services reported empty, and the timer that believes it after the grace.
        self._emptied: dict[str, threading.Timer] = {}
        # Held while a change is decided and told, so the watch's and the grace
        # timer's changes reach listeners one at a time, in order.
        self._delivering = threading.Lock()

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

    def staleness(self) -> dict[str, float]:
        """Seconds since the registry last answered about each watched service: the age
        of the endpoints `instances()` serves (exported for monitoring)."""
        now = time.monotonic()
        with self._lock:
            return {service: now - watch.last_contact for service, watch in self._watches.items()}

    def close(self) -> None:
        with self._lock:
            for watch in self._watches.values():
                watch.stop()
            self._watches.clear()
            for timer in self._emptied.values():
                timer.cancel()
            self._emptied.clear()

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
        with self._delivering:
            with self._lock:
                known = self._instances.get(service)
                if not instances and known and self._empty_grace:
                    self._keep_for_a_while(service)
                    return
                pending = self._emptied.pop(service, None)
                if pending is not None:
                    pending.cancel()
                if instances == known:
                    return  # the index moved for another reason
            self._publish(service, instances)

    def _keep_for_a_while(self, service: str) -> None:
        if service in self._emptied:
            return
        timer = threading.Timer(self._empty_grace, self._believe_empty, (service,))
        timer.daemon = True
        self._emptied[service] = timer
        timer.start()
        _log.warning(
            "endpoints_kept",
            service=service,
            reason="the registry reports no healthy instance",
            seconds=self._empty_grace,
        )

    def _believe_empty(self, service: str) -> None:
        with self._delivering:
            with self._lock:
                if self._emptied.pop(service, None) is None:
                    return  # instances came back, or the cache was closed
            self._publish(service, [])

    def _publish(self, service: str, instances: list[ServiceInstance]) -> None:
        with self._lock:
            self._instances[service] = instances
            listeners = list(self._listeners.get(service, []))
        _log.info("endpoints_changed", service=service, endpoints=[i.endpoint for i in instances])
        for listener in listeners:
            listener(instances)
