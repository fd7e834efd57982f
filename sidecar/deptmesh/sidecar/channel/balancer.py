"""Client-side balancing over a service's endpoints: one channel each, power of two choices.

grpcio has no pluggable name resolver, so the sidecar keeps one channel per
endpoint itself. Each call picks two usable endpoints at random and takes the
one with fewer outstanding calls. An endpoint whose connection fails is
ejected and readmitted after a backoff that doubles while it keeps failing.

A grpc channel keeps the credentials it was opened with, so when our identity
changes (a renewed leaf, a rotated CA) every endpoint moves to a fresh channel
and the old one is closed once its in-flight calls end: no call fails, and
new calls present the new certificate and trust the new roots.

The balancer serves the sync and the asyncio channel alike: it only opens and
closes channels through the functions it is given. A channel is opened when a
call first picks its endpoint, in the thread (or on the event loop) of that
call, never on the registry's watch thread: a grpc.aio channel belongs to the
loop it was opened on.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import structlog

from deptmesh.registry.cache import ServiceUnavailable
from deptmesh.sidecar.identity.sources import IdentitySource, ServerIdentity

__all__ = ["Balancer", "ChannelFactory", "Endpoint"]

_log = structlog.get_logger("deptmesh.sidecar")


class _Closeable(Protocol):
    def close(self) -> object: ...


C = TypeVar("C", bound=_Closeable)

# Opens the channel to one endpoint address ("host:port").
ChannelFactory = Callable[[str], C]


def _close_now(channel: _Closeable) -> None:
    channel.close()


@dataclass(eq=False)
class Endpoint(Generic[C]):
    """One address of the service, its channel (once a call needed it) and its record."""

    address: str
    opened: C | None = None
    outstanding: int = 0
    calls: int = 0
    ejected_until: float = 0.0
    consecutive_failures: int = 0
    removed: bool = False
    # What the channels' unary_unary(...) and friends returned, by (shape, method):
    # built once per endpoint, not per call.
    callables: dict[tuple[str, str], Any] = field(default_factory=dict)

    @property
    def channel(self) -> C:
        """The endpoint's channel; every endpoint `pick` returns has one."""
        if self.opened is None:
            raise RuntimeError(f"the channel to {self.address} was never opened")
        return self.opened


class Balancer(Generic[C]):
    """The endpoints of one service and their channels, chosen per call."""

    def __init__(
        self,
        service: str,
        channel_factory: ChannelFactory[C],
        *,
        close_channel: Callable[[C], None] = _close_now,
        identity: IdentitySource | None = None,
        eject_seconds: float = 1.0,
        max_eject_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`identity` is what `channel_factory` opens channels with (None: plaintext).
        `close_channel` closes a channel no call uses any more; it may be called from
        any thread."""
        self.service = service
        self._open = channel_factory
        self._close = close_channel
        self._identity = identity
        self._opened_with: ServerIdentity | None = None if identity is None else identity()
        self._eject = eject_seconds
        self._max_eject = max_eject_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._endpoints: dict[str, Endpoint[C]] = {}
        self._closed = False

    def update(self, addresses: Iterable[str]) -> None:
        """Follows the catalog: adds new endpoints, retires gone ones."""
        wanted = set(addresses)
        with self._lock:
            if self._closed:
                return  # the catalog still reports changes to a closed channel
            for address in wanted - self._endpoints.keys():
                self._endpoints[address] = Endpoint(address)
            for address in self._endpoints.keys() - wanted:
                self._retire(self._endpoints.pop(address))

    def pick(self, avoid: Collection[str] = ()) -> Endpoint[C]:
        """An endpoint for one call (released with `release`); avoids `avoid` if it can."""
        if self._identity is not None:
            # Sources return the same object until something changes: one
            # identity check per call, the value compared only when it differs.
            current = self._identity()
            if current is not self._opened_with:
                self._follow_identity(current)
        now = self._clock()
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
            if chosen.opened is None:
                chosen.opened = self._open(chosen.address)
            chosen.outstanding += 1
            chosen.calls += 1
            return chosen

    def release(self, endpoint: Endpoint[C], *, connection_failed: bool) -> None:
        with self._lock:
            endpoint.outstanding -= 1
            if connection_failed:
                now = self._clock()
                # One ejection per episode: the other calls that were in flight when the
                # endpoint went (or were sent to it because every endpoint was ejected)
                # fail within its ejection and must not double the backoff again; only
                # a failure after it was readmitted does.
                if now >= endpoint.ejected_until:
                    endpoint.consecutive_failures += 1
                    backoff = self._eject * 2 ** (endpoint.consecutive_failures - 1)
                    endpoint.ejected_until = now + min(backoff, self._max_eject)
                    _log.warning(
                        "endpoint_ejected",
                        service=self.service,
                        endpoint=endpoint.address,
                        seconds=min(backoff, self._max_eject),
                    )
            else:
                endpoint.consecutive_failures = 0
            if endpoint.removed and endpoint.outstanding == 0 and endpoint.opened is not None:
                self._close(endpoint.opened)

    def _follow_identity(self, current: ServerIdentity) -> None:
        with self._lock:
            changed = current != self._opened_with
            self._opened_with = current
            if not changed:
                return
            for address, old in list(self._endpoints.items()):
                # Ejection is not carried over: the old credentials may be why it failed.
                self._endpoints[address] = Endpoint(address, calls=old.calls)
                self._retire(old)
        _log.info("channels_reopened", service=self.service, reason="identity_changed")

    def _retire(self, endpoint: Endpoint[C]) -> None:
        endpoint.removed = True
        if endpoint.outstanding == 0 and endpoint.opened is not None:
            self._close(endpoint.opened)
        # else: closed by release() when its last call ends.

    def endpoint(self, address: str) -> Endpoint[C] | None:
        """The current endpoint at `address`, to observe its calls and ejection."""
        with self._lock:
            return self._endpoints.get(address)

    def call_counts(self) -> dict[str, int]:
        """Calls started per current endpoint, for tools and the demo."""
        with self._lock:
            return {address: e.calls for address, e in sorted(self._endpoints.items())}

    def close(self) -> list[C]:
        """Forgets every endpoint; returns their open channels, for the caller to close
        (at once on a sync channel, awaited within a grace period on an asyncio one)."""
        with self._lock:
            channels = [e.opened for e in self._endpoints.values() if e.opened is not None]
            self._endpoints.clear()
            self._closed = True
        return channels
