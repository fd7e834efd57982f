"""The asyncio twin of `sidecar.client.connect`, for services on grpc.aio.

It is a thin adapter over the same policy core as the sync channel: the same
registry cache, balancer, deadline and retry rules (one implementation, not
two). Each unary call runs the sync call in a worker thread, which copies the
context, so an inbound deadline still caps the outbound call. The thread hop
costs tens of microseconds per call; streaming calls are not offered here yet.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc
import grpc.aio

from deptmesh.registry.cache import EndpointCache
from deptmesh.sidecar.channel._sync import ServiceChannel
from deptmesh.sidecar.channel.client import DEFAULT_TIMEOUT_SECONDS
from deptmesh.sidecar.channel.client import connect as connect_sync
from deptmesh.sidecar.identity.sources import IdentitySource
from deptmesh.sidecar.tracing import Tracing

__all__ = ["AioServiceChannel", "connect"]

_NO_STREAMING = "streaming calls are not supported on the asyncio service channel yet"


class _AioUnaryUnary(grpc.aio.UnaryUnaryMultiCallable):  # type: ignore[type-arg]
    def __init__(self, sync_callable: grpc.UnaryUnaryMultiCallable[Any, Any]) -> None:
        self._sync = sync_callable

    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        return asyncio.to_thread(
            self._sync,
            request,
            timeout,
            metadata,
            credentials,
            wait_for_ready,
            compression,
        )


class AioServiceChannel(grpc.aio.Channel):
    """What `sidecar.aio.connect(service, cache)` returns: grpc.aio stubs accept it."""

    def __init__(self, sync_channel: ServiceChannel) -> None:
        self._sync = sync_channel

    def balancer(self) -> Any:
        return self._sync.balancer()

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> _AioUnaryUnary:
        return _AioUnaryUnary(
            self._sync.unary_unary(method, request_serializer, response_deserializer)
        )

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(_NO_STREAMING)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(_NO_STREAMING)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(_NO_STREAMING)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        raise NotImplementedError("a service channel has no single connectivity state")

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        raise NotImplementedError("a service channel has no single connectivity state")

    async def channel_ready(self) -> None:
        await asyncio.to_thread(self._sync.balancer)

    async def close(self, grace: float | None = None) -> None:
        self._sync.close()

    async def __aenter__(self) -> AioServiceChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


def connect(
    service: str,
    cache: EndpointCache,
    *,
    identity: IdentitySource | None = None,
    default_timeout: float = DEFAULT_TIMEOUT_SECONDS,
    tracing: Tracing | None = None,
) -> AioServiceChannel:
    """A grpc.aio channel over the healthy instances of `service` (see client.connect)."""
    return AioServiceChannel(
        connect_sync(
            service, cache, identity=identity, default_timeout=default_timeout, tracing=tracing
        )
    )
