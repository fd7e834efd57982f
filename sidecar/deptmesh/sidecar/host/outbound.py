"""The channels a department opens to other departments, wired by the host.

Every channel finds its service through one endpoint cache over the process's
registry, presents the process's certificate, carries its tracing, and gives
every call a deadline. The host closes them all (and the cache) once the
department itself has closed.
"""

from __future__ import annotations

import threading

from deptmesh.registry.cache import EndpointCache
from deptmesh.sidecar.channel import DEFAULT_TIMEOUT_SECONDS, ServiceChannel, connect
from deptmesh.sidecar.host.mesh import Mesh

__all__ = ["OutboundChannels"]


class OutboundChannels:
    """`connect(service, timeout=...)` for one department; `close()` closes what it opened."""

    def __init__(self, name: str, mesh: Mesh) -> None:
        self._name = name
        self._mesh = mesh
        self._lock = threading.Lock()
        # Made by the first connect: a department that calls nobody watches nothing.
        self._cache: EndpointCache | None = None
        self._channels: list[ServiceChannel] = []

    def connect(self, service: str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> ServiceChannel:
        """A channel to `service`; ValueError when this process has no registry to find it in."""
        registry = self._mesh.registry
        if registry is None:
            raise ValueError(
                f"{self._name} calls {service}, found through the registry:"
                " give --consul-address (or $CONSUL_HTTP_ADDR)"
            )
        with self._lock:
            if self._cache is None:
                self._cache = EndpointCache(registry)
            channel = connect(
                service,
                self._cache,
                identity=self._mesh.identity,
                default_timeout=timeout,
                tracing=self._mesh.tracing,
            )
            self._channels.append(channel)
        return channel

    def staleness(self) -> dict[str, float]:
        """The endpoint cache's age per service called (none before the first connect)."""
        with self._lock:
            cache = self._cache
        return {} if cache is None else cache.staleness()

    def close(self) -> None:
        with self._lock:
            channels, self._channels = self._channels, []
            cache, self._cache = self._cache, None
        for channel in channels:
            channel.close()
        if cache is not None:
            cache.close()
