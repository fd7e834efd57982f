"""A grpc.aio.Channel over all the healthy instances of one service, for services on
grpc.aio: no thread per call, all four call shapes.

It keeps one grpc.aio channel per endpoint (balancer.py, the same balancer as
the sync channel: power of two choices, ejection, reopening on a new identity)
and runs every call through the same client chain (client_chain.py: deadline,
client span, endpoint, retry); this module only awaits where the chain says to
wait. A unary-unary call is retried as the chain allows (see _aio_call.py).
The three streaming shapes are attempted once and returned as grpc.aio's own
call objects, so streaming costs nothing per message; their span ends and
their endpoint is released when grpc reports them done (exhausted, cancelled
or failed).

Like a grpc.aio channel, it belongs to the event loop of its first call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc
import grpc.aio

from deptmesh.sidecar.channel._aio_call import EventLoop, UnaryCall
from deptmesh.sidecar.channel.balancer import Balancer, ChannelFactory, Endpoint
from deptmesh.sidecar.channel.client_chain import ClientChain, MethodChain, OutboundCall
from deptmesh.sidecar.channel.endpoints import EndpointSource
from deptmesh.sidecar.identity.sources import IdentitySource
from deptmesh.sidecar.tracing import Tracing

__all__ = ["AioServiceChannel"]

Serializer = Callable[[Any], bytes] | None
Deserializer = Callable[[bytes], Any] | None
Requests = AsyncIterator[Any] | Iterator[Any] | None
# Starts one attempt on an endpoint's own multicallable: (callable, timeout, metadata).
Invoke = Callable[[Any, float, Any], Any]


class _Method:
    """One method in one shape: its chain, and how to ask an endpoint's channel for it."""

    __slots__ = ("_chain", "_key", "_loop", "_open")

    def __init__(
        self,
        chain: MethodChain,
        loop: EventLoop,
        shape: str,
        open_callable: Callable[[grpc.aio.Channel], Any],
    ) -> None:
        self._chain = chain
        self._loop = loop
        self._key = (shape, chain.path)
        self._open = open_callable

    def _callable(self, endpoint: Endpoint[grpc.aio.Channel]) -> Any:
        found = endpoint.callables.get(self._key)
        if found is None:
            found = endpoint.callables[self._key] = self._open(endpoint.channel)
        return found

    def _started(self, invoke: Invoke, timeout: float | None, metadata: Any) -> Any:
        """One attempt, left to the caller: ended by the chain when grpc says it is done."""
        chain = self._chain
        call = chain.start(timeout, metadata)
        endpoint = chain.attempt(call)
        try:
            started = invoke(self._callable(endpoint), call.time_left(), call.metadata)
        except BaseException:
            chain.abandon(call, endpoint, grpc.StatusCode.UNKNOWN)
            raise
        started.add_done_callback(self._ender(call, endpoint))
        return started

    def _ender(
        self, call: OutboundCall, endpoint: Endpoint[grpc.aio.Channel]
    ) -> Callable[[Any], None]:
        chain = self._chain

        async def end(done: Any) -> None:
            chain.finish(call, endpoint, await done.code(), await done.details())

        # grpc.aio gives the status to coroutines only: read it in a task of its own.
        return lambda done: self._loop.spawn(lambda: end(done))


def _invoker(
    request: Any,
    credentials: grpc.CallCredentials | None,
    wait_for_ready: bool | None,
    compression: grpc.Compression | None,
) -> Invoke:
    """Starts one attempt of a call on an endpoint's own multicallable."""

    def invoke(multicallable: Any, seconds: float, headers: Any) -> Any:
        return multicallable(
            request,
            timeout=seconds,
            metadata=headers,
            credentials=credentials,
            wait_for_ready=wait_for_ready,
            compression=compression,
        )

    return invoke


class _UnaryUnary(_Method, grpc.aio.UnaryUnaryMultiCallable):  # type: ignore[type-arg]
    def __call__(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> UnaryCall:
        invoke = _invoker(request, credentials, wait_for_ready, compression)

        def start(endpoint: Endpoint[grpc.aio.Channel], seconds: float, headers: Any) -> Any:
            return invoke(self._callable(endpoint), seconds, headers)

        return UnaryCall(self._chain, timeout, metadata, start)


class _UnaryStream(_Method, grpc.aio.UnaryStreamMultiCallable):  # type: ignore[type-arg]
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
        invoke = _invoker(request, credentials, wait_for_ready, compression)
        return self._started(invoke, timeout, metadata)


class _StreamUnary(_Method, grpc.aio.StreamUnaryMultiCallable):  # type: ignore[type-arg]
    def __call__(
        self,
        request_iterator: Requests = None,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        invoke = _invoker(request_iterator, credentials, wait_for_ready, compression)
        return self._started(invoke, timeout, metadata)


class _StreamStream(_Method, grpc.aio.StreamStreamMultiCallable):  # type: ignore[type-arg]
    def __call__(
        self,
        request_iterator: Requests = None,
        timeout: float | None = None,
        metadata: Any = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        invoke = _invoker(request_iterator, credentials, wait_for_ready, compression)
        return self._started(invoke, timeout, metadata)


class AioServiceChannel(grpc.aio.Channel):
    """What `deptmesh.sidecar.aio_connect(service, cache)` returns: grpc.aio stubs accept it."""

    def __init__(
        self,
        service: str,
        endpoints: EndpointSource,
        *,
        default_timeout: float,
        channel_factory: ChannelFactory[grpc.aio.Channel] = grpc.aio.insecure_channel,
        identity: IdentitySource | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """As ServiceChannel; `channel_factory` opens grpc.aio channels."""
        self.service = service
        self.default_timeout = default_timeout
        self.tracing = tracing
        self._loop = EventLoop()

        def open_channel(address: str) -> grpc.aio.Channel:
            self._loop.opening()
            return channel_factory(address)

        def close_channel(channel: grpc.aio.Channel) -> None:
            self._loop.spawn(channel.close)

        self._chain = ClientChain(
            service,
            endpoints,
            Balancer(service, open_channel, close_channel=close_channel, identity=identity),
            default_timeout=default_timeout,
            tracing=tracing,
            plaintext=identity is None,
        )

    def balancer(self) -> Balancer[grpc.aio.Channel]:
        """The balancer, subscribed to the catalog on first use (NoEndpoint if unknown)."""
        return self._chain.balancer()

    def unary_unary(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> _UnaryUnary:
        return _UnaryUnary(
            self._chain.method(method, retries=True),
            self._loop,
            "unary_unary",
            lambda channel: channel.unary_unary(  # type: ignore[call-arg]
                method, request_serializer, response_deserializer, _registered_method
            ),
        )

    def unary_stream(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> _UnaryStream:
        return _UnaryStream(
            self._chain.method(method, retries=False),
            self._loop,
            "unary_stream",
            lambda channel: channel.unary_stream(  # type: ignore[call-arg]
                method, request_serializer, response_deserializer, _registered_method
            ),
        )

    def stream_unary(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> _StreamUnary:
        return _StreamUnary(
            self._chain.method(method, retries=False),
            self._loop,
            "stream_unary",
            lambda channel: channel.stream_unary(  # type: ignore[call-arg]
                method, request_serializer, response_deserializer, _registered_method
            ),
        )

    def stream_stream(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> _StreamStream:
        return _StreamStream(
            self._chain.method(method, retries=False),
            self._loop,
            "stream_stream",
            lambda channel: channel.stream_stream(  # type: ignore[call-arg]
                method, request_serializer, response_deserializer, _registered_method
            ),
        )

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        raise NotImplementedError("a service channel has no single connectivity state")

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        raise NotImplementedError("a service channel has no single connectivity state")

    async def channel_ready(self) -> None:
        """Subscribes to the catalog now, off the loop (the first query may block on
        the registry); without it, the first call subscribes."""
        await asyncio.to_thread(self._chain.balancer)

    async def close(self, grace: float | None = None) -> None:
        """Closes every endpoint's channel (in-flight calls get `grace` seconds), and
        waits for the spans of the calls that ended meanwhile."""
        await asyncio.gather(*(channel.close(grace) for channel in self._chain.close()))
        await self._loop.settle()

    async def __aenter__(self) -> AioServiceChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
