"""Where a channel learns the addresses it may call: a service in the registry cache, or
one fixed address (`dial`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from deptmesh.registry.cache import EndpointCache, ServiceUnavailable
from deptmesh.registry.model import ServiceInstance
from deptmesh.sidecar.errors import NoEndpoint

__all__ = ["AddressListener", "CatalogEndpoints", "EndpointSource", "FixedEndpoint"]

# Receives every later list of addresses ("host:port").
AddressListener = Callable[[list[str]], None]


class EndpointSource(Protocol):
    """The addresses of the instances a channel balances over."""

    def subscribe(self, listener: AddressListener) -> list[str]:
        """The addresses now; `listener` gets every later change. Raises NoEndpoint."""
        ...

    def check(self) -> None:
        """Raises NoEndpoint when the addresses can no longer be trusted (asked per call)."""
        ...


class CatalogEndpoints:
    """The healthy instances of `service`, as the registry cache knows them."""

    def __init__(self, service: str, cache: EndpointCache) -> None:
        self._service = service
        self._cache = cache

    def subscribe(self, listener: AddressListener) -> list[str]:
        def follow(instances: list[ServiceInstance]) -> None:
            listener([instance.endpoint for instance in instances])

        try:
            instances = self._cache.subscribe(self._service, follow)
        except ServiceUnavailable as error:
            raise NoEndpoint(str(error)) from error
        return [instance.endpoint for instance in instances]

    def check(self) -> None:
        try:
            self._cache.instances(self._service)  # raises when the endpoints are too stale
        except ServiceUnavailable as error:
            raise NoEndpoint(str(error)) from error


class FixedEndpoint:
    """One address that never changes, for tools and tests."""

    def __init__(self, address: str) -> None:
        self._address = address

    def subscribe(self, listener: AddressListener) -> list[str]:
        return [self._address]

    def check(self) -> None:
        return None
