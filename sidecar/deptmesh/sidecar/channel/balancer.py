"""Client-side balancing over a service's endpoints: one channel each, power of two choices.

grpcio has no pluggable name resolver, so the sidecar keeps one channel per
endpoint itself. Each call picks two usable endpoints at random and takes the
one with fewer outstanding calls. An endpoint whose connection fails is
ejected and readmitted after a backoff that doubles while it keeps failing.

A grpc channel keeps the credentials it was opened with, so when our identity
changes (a renewed leaf, a rotated CA) every endpoint moves to a fresh channel
and the old one is closed once its in-flight calls end: no call fails, and
new calls present the new certificate and trust the new roots.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import grpc
import structlog

from deptmesh.registry.cache import ServiceUnavailable
from deptmesh.registry.model import ServiceInstance
from deptmesh.sidecar.identity.sources import IdentitySource, ServerIdentity

_log = structlog.get_logger("deptmesh.sidecar")

ChannelFactory = Callable[[str], grpc.Channel]


@dataclass(eq=False)
class Endpoint:
    address: str
    channel: grpc.Channel
    outstanding: int = 0
    calls: int = 0
    ejected_until: float = 0.0
    consecutive_failures: int = 0
    removed: bool = False
    callables: dict[tuple[str, str], object] = field(default_factory=dict)


class Balancer:
    def __init__(
        self,
        service: str,
        channel_factory: ChannelFactory,
        *,
        identity: IdentitySource | None = None,
        eject_seconds: float = 1.0,
        max_eject_seconds: float = 30.0,
    ) -> None:
        """`identity` is what `channel_factory` opens channels with (None: plaintext)."""
        self.service = service
        self._factory = channel_factory
        self._identity = identity
        self._opened_with: ServerIdentity | None = None if identity is None else identity()
        self._eject = eject_seconds
        self._max_eject = max_eject_seconds
        self._lock = threading.Lock()
        self._endpoints: dict[str, Endpoint] = {}

    def update(self, instances: list[ServiceInstance]) -> None:
        """Follows the catalog: opens channels to new endpoints, retires gone ones."""
        wanted = {instance.endpoint for instance in instances}
        with self._lock:
            for address in wanted - self._endpoints.keys():
                self._endpoints[address] = Endpoint(address, self._factory(address))
            for address in self._endpoints.keys() - wanted:
                self._retire(self._endpoints.pop(address))

    def pick(self, avoid: Collection[str] = ()) -> Endpoint:
        """An endpoint for one call (released with `release`); avoids `avoid` if it can."""
        if self._identity is not None:
            # Sources return the same object until something changes: one
            # identity check per call, the value compared only when it differs.
            current = self._identity()
            if current is not self._opened_with:
                self._follow_identity(current)
        now = time.monotonic()
        with self._lock:
            endpoints = list(self._endpoints.values())
            usable = [e for e in endpoints if e.ejected_until <= now and e.address not in avoid]
            if not usable:
                # Every endpoint is ejected or was tried: one that was ejected
                # longest ago is still better than failing without trying.
                usable = [e for e in endpoints if e.address not in avoid] or endpoints
            if not usable:
                raise ServiceUnavailable(f"no healthy instance of service {self.service!r}")
            if len(usable) == 1:
                chosen = usable[0]
            else:
                first, second = random.sample(usable, 2)
                chosen = first if first.outstanding <= second.outstanding else second
            chosen.outstanding += 1
            chosen.calls += 1
            return chosen

    def release(self, endpoint: Endpoint, *, connection_failed: bool) -> None:
        with self._lock:
            endpoint.outstanding -= 1
            if connection_failed:
                endpoint.consecutive_failures += 1
                backoff = self._eject * 2 ** (endpoint.consecutive_failures - 1)
                endpoint.ejected_until = time.monotonic() + min(backoff, self._max_eject)
                _log.warning(
                    "endpoint_ejected",
                    service=self.service,
                    endpoint=endpoint.address,
                    seconds=min(backoff, self._max_eject),
                )
            else:
                endpoint.consecutive_failures = 0
            if endpoint.removed and endpoint.outstanding == 0:
                endpoint.channel.close()

    def _follow_identity(self, current: ServerIdentity) -> None:
        with self._lock:
            changed = current != self._opened_with
            self._opened_with = current
            if not changed:
                return
            for address, old in list(self._endpoints.items()):
                # Ejection is not carried over: the old credentials may be why it failed.
                self._endpoints[address] = Endpoint(
                    address, self._factory(address), calls=old.calls
                )
                self._retire(old)
        _log.info("channels_reopened", service=self.service, reason="identity_changed")

    def _retire(self, endpoint: Endpoint) -> None:
        endpoint.removed = True
        if endpoint.outstanding == 0:
            endpoint.channel.close()
        # else: closed by release() when its last call ends.

    def endpoint(self, address: str) -> Endpoint | None:
        """The current endpoint at `address`, to observe its calls and ejection."""
        with self._lock:
            return self._endpoints.get(address)

    def call_counts(self) -> dict[str, int]:
        """Calls started per current endpoint, for tools and the demo."""
        with self._lock:
            return {address: e.calls for address, e in sorted(self._endpoints.items())}

    def close(self) -> None:
        with self._lock:
            for endpoint in self._endpoints.values():
                endpoint.channel.close()
            self._endpoints.clear()
