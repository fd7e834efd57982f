"""A grpc.Channel over all healthy instances of one service.

Generated stubs call `channel.unary_unary(path, ...)` once per method and then
call the result; each call here picks an endpoint (power of two choices), sets
the deadline, and retries on another endpoint when that is safe: the call never
reached a server, or the contract declares the method idempotent. A call our
quota stage throttled is repeated only after the delay its RetryInfo names, and
only when that fits in the deadline.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc

from deptmesh.registry.cache import EndpointCache, ServiceUnavailable
from deptmesh.sidecar.channel.balancer import Balancer, Endpoint
from deptmesh.sidecar.channel.idempotency import is_idempotent
from deptmesh.sidecar.channel.retry_info import quota_retry_delay
from deptmesh.sidecar.deadline.budget import outbound_timeout
from deptmesh.sidecar.errors import NoEndpoint
from deptmesh.sidecar.identity.sources import IdentitySource
from deptmesh.sidecar.tracing import Tracing
from deptmesh.sidecar.tracing.client_span import ClientSpan, client_span

Metadata = tuple[tuple[str, str | bytes], ...]

MAX_ATTEMPTS = 3
# grpc's own words for a call that never got a connection to a server.
_NOT_CONNECTED = ("failed to connect", "connection refused", "connections to all backends failing")


def _never_reached_server(error: grpc.RpcError) -> bool:
    details = (error.details() or "").lower()
    return error.code() is grpc.StatusCode.UNAVAILABLE and any(
        words in details for words in _NOT_CONNECTED
    )


class _BalancedUnaryUnary(grpc.UnaryUnaryMultiCallable):  # type: ignore[type-arg]
    def __init__(
        self,
        channel: ServiceChannel,
        method: str,
        serializer: Callable[[Any], bytes] | None,
        deserializer: Callable[[bytes], Any] | None,
    ) -> None:
        self._channel = channel
        self._method = method
        self._serializer = serializer
        self._deserializer = deserializer
        self._idempotent = is_idempotent(method)

    def _endpoint_callable(self, endpoint: Endpoint) -> Any:
        key = ("unary_unary", self._method)
        found = endpoint.callables.get(key)
        if found is None:
            found = endpoint.channel.unary_unary(
                self._method,
                request_serializer=self._serializer,
                response_deserializer=self._deserializer,
            )
            endpoint.callables[key] = found
        return found

    def __call__(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        response, _ = self.with_call(
            request, timeout, metadata, credentials, wait_for_ready, compression
        )
        return response

    def with_call(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        kwargs = {
            "credentials": credentials,
            "wait_for_ready": wait_for_ready,
            "compression": compression,
        }
        tracing = self._channel.tracing
        if tracing is None:
            return self._with_retries(request, timeout, metadata, kwargs, None)
        with client_span(tracing, self._channel.service, self._method, metadata) as traced:
            try:
                result = self._with_retries(request, timeout, traced.metadata, kwargs, traced)
            except grpc.RpcError as error:
                traced.ended(error.code())
                raise
            traced.ended(grpc.StatusCode.OK)
            return result

    def _with_retries(
        self,
        request: Any,
        timeout: float | None,
        metadata: Metadata | None,
        kwargs: dict[str, Any],
        traced: ClientSpan | None,
    ) -> Any:
        balancer = self._channel.balancer()
        deadline = time.monotonic() + outbound_timeout(timeout, self._channel.default_timeout)
        tried: list[str] = []
        pause = 0.0
        while True:
            if pause:
                time.sleep(pause)  # what the server's RetryInfo asked for, never less
            try:
                endpoint = balancer.pick(avoid=tried)
            except ServiceUnavailable as error:
                raise NoEndpoint(str(error)) from error
            tried.append(endpoint.address)
            if traced is not None:
                traced.attempt(endpoint.address)
            connection_failed = False
            try:
                return self._endpoint_callable(endpoint).with_call(
                    request,
                    timeout=max(0.0, deadline - time.monotonic()),
                    metadata=metadata,
                    **kwargs,
                )
            except grpc.RpcError as error:
                connection_failed = _never_reached_server(error)
                unavailable = error.code() is grpc.StatusCode.UNAVAILABLE
                throttled_for = quota_retry_delay(error)
                if throttled_for is not None:
                    # Refused before the handler ran: safe to repeat, once the
                    # quota has a token again and if that is within the deadline.
                    pause = throttled_for
                    retry_safe = time.monotonic() + pause < deadline
                else:
                    pause = 0.0
                    retry_safe = connection_failed or (unavailable and self._idempotent)
                if not retry_safe or len(tried) >= MAX_ATTEMPTS or time.monotonic() >= deadline:
                    raise
            finally:
                balancer.release(endpoint, connection_failed=connection_failed)

    def future(
        self,
        request: Any,
        timeout: float | None = None,
        metadata: Metadata | None = None,
        credentials: grpc.CallCredentials | None = None,
        wait_for_ready: bool | None = None,
        compression: grpc.Compression | None = None,
    ) -> Any:
        # Futures are not retried: the caller owns the call once it has started.
        balancer = self._channel.balancer()
        try:
            endpoint = balancer.pick()
        except ServiceUnavailable as error:
            raise NoEndpoint(str(error)) from error
        future = self._endpoint_callable(endpoint).future(
            request,
            timeout=outbound_timeout(timeout, self._channel.default_timeout),
            metadata=metadata,
            credentials=credentials,
            wait_for_ready=wait_for_ready,
            compression=compression,
        )
        future.add_done_callback(lambda _: balancer.release(endpoint, connection_failed=False))
        return future


class ServiceChannel(grpc.Channel):
    """What `sidecar.connect(service, ...)` returns: generated stubs accept it."""

    def __init__(
        self,
        service: str,
        cache: EndpointCache,
        *,
        default_timeout: float,
        channel_factory: Callable[[str], grpc.Channel] = grpc.insecure_channel,
        identity: IdentitySource | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        """`identity` is what `channel_factory` opens channels with; when it
        changes, new calls go to freshly opened channels (see _balancer.py).
        With `tracing`, each unary call has a client span and sends its context."""
        self.service = service
        self.default_timeout = default_timeout
        self.tracing = tracing
        self._cache = cache
        self._balancer = Balancer(service, channel_factory, identity=identity)
        self._subscribed = False

    def balancer(self) -> Balancer:
        """The balancer, subscribed to the catalog on first use (fails fast if unknown)."""
        try:
            if not self._subscribed:
                self._balancer.update(self._cache.subscribe(self.service, self._balancer.update))
                self._subscribed = True
            self._cache.instances(self.service)  # raises when the endpoints are too stale
        except ServiceUnavailable as error:
            raise NoEndpoint(str(error)) from error
        return self._balancer

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> grpc.UnaryUnaryMultiCallable[Any, Any]:
        return _BalancedUnaryUnary(self, method, request_serializer, response_deserializer)

    def _single(self) -> grpc.Channel:
        try:
            endpoint = self.balancer().pick()
        except ServiceUnavailable as error:
            raise NoEndpoint(str(error)) from error
        self._balancer.release(endpoint, connection_failed=False)
        return endpoint.channel

    # Streaming calls go to one endpoint for their whole life; they are not retried.
    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._single().unary_stream(method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._single().stream_unary(method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._single().stream_stream(method, *args, **kwargs)

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        raise NotImplementedError("a ServiceChannel has no single connectivity state")

    def unsubscribe(self, callback: Any) -> None:
        raise NotImplementedError("a ServiceChannel has no single connectivity state")

    def close(self) -> None:
        self._balancer.close()

    def __enter__(self) -> ServiceChannel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


__all__ = ["ServiceChannel"]
