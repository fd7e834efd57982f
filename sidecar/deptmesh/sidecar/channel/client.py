"""Outbound channels: what a service's generated stubs call other departments through.

`connect(service, cache)` returns a grpc.Channel over every healthy instance of
a service, found through the registry cache; `aio_connect` is its grpc.aio
twin; `dial(address)` is one fixed address, for tools and tests. All three
run every call, in every shape, through the same client chain
(client_chain.py): a deadline (the caller's own timeout or the default, never
beyond the inbound call's remaining time), a client span, balancing with
ejection of failed endpoints, and the safe retries.
"""

from __future__ import annotations

import grpc
import grpc.aio

from deptmesh.registry.cache import EndpointCache
from deptmesh.sidecar.channel._aio import AioServiceChannel
from deptmesh.sidecar.channel._sync import ServiceChannel
from deptmesh.sidecar.channel.endpoints import CatalogEndpoints, FixedEndpoint
from deptmesh.sidecar.channel.mtls import aio_mtls_channel_factory, mtls_channel_factory
from deptmesh.sidecar.identity.sources import IdentitySource
from deptmesh.sidecar.tracing import Tracing

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "aio_connect",
    "connect",
    "dial",
    "mtls_channel_factory",
]

DEFAULT_TIMEOUT_SECONDS = 5.0


def check_timeout(default_timeout: float) -> None:
    if default_timeout <= 0:
        raise ValueError(f"default_timeout must be positive, got {default_timeout}")


def connect(
    service: str,
    cache: EndpointCache,
    *,
    identity: IdentitySource | None = None,
    default_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    tracing: Tracing | None = None,
) -> ServiceChannel:
    """A channel over the healthy instances of `service`, as the registry cache knows them.

    With an identity every endpoint is reached over mTLS: our leaf is presented,
    and the server must hold `service`'s certificate (see spiffe.server_name).
    A renewed leaf or rotated CA is picked up by the next call, with no restart
    and no failed call. Without an identity the channel is plaintext, for
    development only. With `tracing` each call has a client span whose context
    travels with it (W3C traceparent, tracestate, baggage).
    """
    check_timeout(default_timeout)
    factory = grpc.insecure_channel if identity is None else mtls_channel_factory(service, identity)
    return ServiceChannel(
        service,
        CatalogEndpoints(service, cache),
        default_timeout=default_timeout,
        channel_factory=factory,
        identity=identity,
        tracing=tracing,
    )


def aio_connect(
    service: str,
    cache: EndpointCache,
    *,
    identity: IdentitySource | None = None,
    default_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    tracing: Tracing | None = None,
) -> AioServiceChannel:
    """`connect` for grpc.aio: a grpc.aio channel per endpoint, awaited calls, streams."""
    check_timeout(default_timeout)
    factory = (
        grpc.aio.insecure_channel
        if identity is None
        else aio_mtls_channel_factory(service, identity)
    )
    return AioServiceChannel(
        service,
        CatalogEndpoints(service, cache),
        default_timeout=default_timeout,
        channel_factory=factory,
        identity=identity,
        tracing=tracing,
    )


def dial(
    address: str,
    *,
    default_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    tracing: Tracing | None = None,
) -> ServiceChannel:
    """A plaintext channel to one fixed `address`, every call through the client chain."""
    check_timeout(default_timeout)
    return ServiceChannel(
        address, FixedEndpoint(address), default_timeout=default_timeout, tracing=tracing
    )
