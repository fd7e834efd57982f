"""A grpc.Channel over all the healthy instances of one service.

Generated stubs call `channel.unary_unary(path, ...)` (or one of the three
streaming shapes) once per method and then call the result. Every call, whatever
its shape and whether it is made with `__call__`, `with_call` or `future`, goes
through the client chain (client_chain.py: deadline, client span, endpoint,
retry); this module only blocks where the chain says to wait.

Which calls are retried (see client_chain.py): a unary-unary `__call__` or
`with_call`. A `future()` and every stream are attempted once; their span ends
and their endpoint is released when grpc reports the call done (completed,
exhausted, cancelled or failed), on grpc's own thread.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from deptmesh.sidecar.channel.balancer import Balancer, ChannelFactory, Endpoint
from deptmesh.sidecar.channel.client_chain import ClientChain, Metadata, MethodChain, OutboundCall
from deptmesh.sidecar.channel.endpoints import EndpointSource
from deptmesh.sidecar.identity.sources import IdentitySource
from deptmesh.sidecar.tracing import Tracing

__all__ = ["ServiceChannel"]

Serializer = Callable[[Any], bytes] | None
Deserializer = Callable[[bytes], Any] | None
# Starts one attempt on an endpoint's own multicallable: (callable, timeout, metadata).
Invoke = Callable[[Any, float, Any], Any]


class _Method:
    """One method in one shape: its chain, and how to ask an endpoint's channel for it."""

    __slots__ = ("_chain", "_key", "_open")

    def __init__(
        self, chain: MethodChain, shape: str, open_callable: Callable[[grpc.Channel], Any]
    ) -> None:
        self._chain = chain
        self._key = (shape, chain.path)
        self._open = open_callable

    def _callable(self, endpoint: Endpoint[grpc.Channel]) -> Any:
        found = endpoint.callables.get(self._key)
        if found is None:
            found = endpoint.callables[self._key] = self._open(endpoint.channel)
        return found

    def _blocking(self, invoke: Invoke, timeout: float | None, metadata: Metadata | None) -> Any:
        """Attempts until one answers or the chain gives up, sleeping where it says."""
        chain = self._chain
        call = chain.start(timeout, metadata)
        endpoint: Endpoint[grpc.Channel] | None = None
        try:
            while True:
                endpoint = chain.attempt(call)
                try:
                    outcome = invoke(self._callable(endpoint), call.time_left(), call.metadata)
                except grpc.RpcError as error:
                    pause = chain.after_failure(call, endpoint, error)
                    endpoint = None  # released
                    if pause is None:
                        explained = chain.explained(error)
                        if explained is error:
                            raise
                        raise explained from error
                    if pause:
                        time.sleep(pause)  # what the server's RetryInfo asked for, never less
                    continue
                chain.after_success(call, endpoint)
                return outcome
        except grpc.RpcError:
            raise  # the chain has ended the call
        except BaseException:
            chain.abandon(call, endpoint, grpc.StatusCode.UNKNOWN)
            raise

    def _started(self, invoke: Invoke, timeout: float | None, metadata: Metadata | None) -> Any:
        """One attempt, left running: ended by the chain when grpc says it is done."""
        chain = self._chain
        call = chain.start(timeout, metadata)
        endpoint = chain.attempt(call)
        try:
            started = invoke(self._callable(endpoint), call.time_left(), call.metadata)
        except BaseException:
            chain.abandon(call, endpoint, grpc.StatusCode.UNKNOWN)
            raise
        started.add_done_callback(_ender(chain, call, endpoint))
        return started


# Which of an endpoint's multicallable's ways of calling an attempt uses.
_CALL = operator.attrgetter("__call__")
_WITH_CALL = operator.attrgetter("with_call")
_FUTURE = operator.attrgetter("future")


def _invoker(
    way: Callable[[Any], Any],
    request: Any,
    credentials: grpc.CallCredentials | None,
    wait_for_ready: bool | None,
    compression: grpc.Compression | None,
) -> Invoke:
    """Starts one attempt of a call on an endpoint's own multicallable, `way` called."""

    def invoke(multicallable: Any, seconds: float, headers: Any) -> Any:
        return way(multicallable)(
            request,
            timeout=seconds,
            metadata=headers,
            credentials=credentials,
            wait_for_ready=wait_for_ready,
            compression=compression,
        )

    return invoke


def _ender(
    chain: MethodChain, call: OutboundCall, endpoint: Endpoint[grpc.Channel]
) -> Callable[[Any], None]:
    def ended(done: Any) -> None:
        chain.finish(call, endpoint, done.code(), done.details())

    return ended


class _UnaryUnary(_Method, grpc.UnaryUnaryMultiCallable):  # type: ignore[type-arg]
    def __call__(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        invoke = _invoker(_CALL, request, credentials, wait_for_ready, compression)
        return self._blocking(invoke, timeout, metadata)

    def with_call(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        invoke = _invoker(_WITH_CALL, request, credentials, wait_for_ready, compression)
        return self._blocking(invoke, timeout, metadata)

    def future(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        invoke = _invoker(_FUTURE, request, credentials, wait_for_ready, compression)
        return self._started(invoke, timeout, metadata)


class _UnaryStream(_Method, grpc.UnaryStreamMultiCallable):  # type: ignore[type-arg]
    def __call__(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        invoke = _invoker(_CALL, request, credentials, wait_for_ready, compression)
        return self._started(invoke, timeout, metadata)


class _StreamUnary(_Method, grpc.StreamUnaryMultiCallable):  # type: ignore[type-arg]
    def __call__(
        self,
        request_iterator: Iterator[Any],
        timeout: float | None = None,
        metadata: Metadata | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        invoke = _invoker(_CALL, request_iterator, credentials, wait_for_ready, compression)
        return self._blocking(invoke, timeout, metadata)

    def with_call(
        self,
        request_iterator: Iterator[Any],
        timeout: float | None = None,
        metadata: Metadata | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        invoke = _invoker(_WITH_CALL, request_iterator, credentials, wait_for_ready, compression)
        return self._blocking(invoke, timeout, metadata)

    def future(
        self,
        request_iterator: Iterator[Any],
        timeout: float | None = None,
        metadata: Metadata | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        invoke = _invoker(_FUTURE, request_iterator, credentials, wait_for_ready, compression)
        return self._started(invoke, timeout, metadata)


class _StreamStream(_Method, grpc.StreamStreamMultiCallable):  # type: ignore[type-arg]
    def __call__(
        self,
        request_iterator: Iterator[Any],
        timeout: float | None = None,
        metadata: Metadata | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        invoke = _invoker(_CALL, request_iterator, credentials, wait_for_ready, compression)
        return self._started(invoke, timeout, metadata)


class ServiceChannel(grpc.Channel):
    """What `deptmesh.sidecar.connect(service, ...)` and `dial(address)` return: generated stubs
    accept it, and every call through it, in every shape, goes through the client chain."""

    def __init__(
        self,
        service: str,
        endpoints: EndpointSource,
        *,
        default_timeout: float,
        channel_factory: ChannelFactory[grpc.Channel] = grpc.insecure_channel,
        identity: IdentitySource | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """`identity` is what `channel_factory` opens channels with; when it changes,
        new calls go to freshly opened channels (see balancer.py). With `tracing`,
        every call has a client span and sends its context."""
        self.service = service
        self.default_timeout = default_timeout
        self.tracing = tracing
        self._chain = ClientChain(
            service,
            endpoints,
            Balancer(service, channel_factory, identity=identity),
            default_timeout=default_timeout,
            tracing=tracing,
            plaintext=identity is None,
        )

    def balancer(self) -> Balancer[grpc.Channel]:
        """The balancer, subscribed to the catalog on first use (NoEndpoint if unknown)."""
        return self._chain.balancer()

    def unary_unary(
        self,
        method: str,
        request_serializer: Serializer = None,
        response_deserializer: Deserializer = None,
        _registered_method: bool | None = False,
    ) -> grpc.UnaryUnaryMultiCallable[Any, Any]:
        return _UnaryUnary(
            self._chain.method(method, retries=True),
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
    ) -> grpc.UnaryStreamMultiCallable[Any, Any]:
        return _UnaryStream(
            self._chain.method(method, retries=False),
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
    ) -> grpc.StreamUnaryMultiCallable[Any, Any]:
        return _StreamUnary(
            self._chain.method(method, retries=False),
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
    ) -> grpc.StreamStreamMultiCallable[Any, Any]:
        return _StreamStream(
            self._chain.method(method, retries=False),
            "stream_stream",
            lambda channel: channel.stream_stream(  # type: ignore[call-arg]
                method, request_serializer, response_deserializer, _registered_method
            ),
        )

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        raise NotImplementedError("a ServiceChannel has no single connectivity state")

    def unsubscribe(self, callback: Any) -> None:
        raise NotImplementedError("a ServiceChannel has no single connectivity state")

    def close(self) -> None:
        for channel in self._chain.close():
            channel.close()

    def __enter__(self) -> ServiceChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
