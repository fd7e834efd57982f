"""Outbound channels: what a service's generated stubs call other departments through.

`connect(service, cache)` returns a grpc.Channel over every healthy instance of
a service (per-call balancing, ejection of failed endpoints, safe retries);
`aio_connect` is its grpc.aio twin, streams included; `dial(address)` is one
fixed address, for tools and tests. Every call, in every shape, goes through one
client chain (client_chain.py): a deadline (the caller's own timeout or the
default, never beyond the inbound call's remaining time), a client span, and
the retry rules.
"""

from deptmesh.sidecar.channel._aio import AioServiceChannel
from deptmesh.sidecar.channel._sync import ServiceChannel
from deptmesh.sidecar.channel.client import (
    DEFAULT_TIMEOUT_SECONDS,
    aio_connect,
    connect,
    dial,
    mtls_channel_factory,
)

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "AioServiceChannel",
    "ServiceChannel",
    "aio_connect",
    "connect",
    "dial",
    "mtls_channel_factory",
]
