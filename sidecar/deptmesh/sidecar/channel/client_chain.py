"""The client chain: what every call through a service channel goes through, whatever
its shape, on the sync and the asyncio channel alike.

1. **deadline**: always set: the caller's timeout or the channel's default,
   capped by the time the inbound call being handled has left (deadline/budget.py);
2. **client span** (with tracing): the rpc.* attributes and the callee, its
   context sent as W3C traceparent, tracestate and baggage; it ends when the
   call ends: for a future when it completes, for a response stream when it
   is exhausted, cancelled or fails;
3. **endpoint**: power of two choices (balancer.py); an attempt that never
   got a connection ejects its endpoint;
4. **retry**, on another endpoint when there is one: only when the attempt
   never reached a server, or when the contract declares the method
   idempotent (idempotency.py) and a server answered UNAVAILABLE; a call our
   quota stage throttled is repeated after the delay its RetryInfo names
   (retry_info.py), only if that fits in the deadline. At most MAX_ATTEMPTS
   attempts, never past the deadline.

What is retried: a unary request whose unary response the caller waits for
(`__call__` and `with_call` on the sync channel, awaiting the call on the
asyncio one). A stream, in either direction, is attempted once: its request
messages may already be on their way and its responses in the caller's hands,
and neither can be taken back. A sync `future()` is attempted once: the caller
owns the call from the moment it starts. Both still get the deadline, the span
and ejection, so the caller's own retry goes elsewhere.

This module decides; the channels (_sync.py, _aio.py) only wait, blocking or
awaiting. Everything that depends only on the method is decided once, when a
stub asks the channel for it (`MethodChain`).
"""

from __future__ import annotations

import time
from typing import Any

import grpc

from deptmesh.registry.cache import ServiceUnavailable
from deptmesh.sidecar.channel.balancer import Balancer, Endpoint
from deptmesh.sidecar.channel.endpoints import EndpointSource
from deptmesh.sidecar.channel.idempotency import is_idempotent
from deptmesh.sidecar.channel.mtls import identity_required
from deptmesh.sidecar.channel.retry_info import quota_retry_delay
from deptmesh.sidecar.deadline.budget import outbound_timeout
from deptmesh.sidecar.errors import NoEndpoint
from deptmesh.sidecar.tracing import Tracing
from deptmesh.sidecar.tracing.client_span import ClientSpan, ClientSpans

__all__ = ["MAX_ATTEMPTS", "ClientChain", "Metadata", "MethodChain", "OutboundCall"]

Metadata = tuple[tuple[str, str | bytes], ...]

MAX_ATTEMPTS = 3
# grpc's own words for a call that never got a connection to a server.
_NOT_CONNECTED = ("failed to connect", "connection refused", "connections to all backends failing")
_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


def never_reached_server(code: grpc.StatusCode, details: str | None) -> bool:
    """True for the failure of a call that never got a connection to a server."""
    if code is not _UNAVAILABLE:
        return False
    lowered = (details or "").lower()
    return any(words in lowered for words in _NOT_CONNECTED)


class OutboundCall:
    """One call on its way through the chain: its deadline, span and the endpoints tried."""

    __slots__ = ("deadline", "metadata", "span", "tried")

    def __init__(self, deadline: float, metadata: Any, span: ClientSpan | None) -> None:
        self.deadline = deadline  # time.monotonic() by which the call must end
        self.metadata = metadata  # the caller's metadata, and the trace headers
        self.span = span
        self.tried: list[str] = []

    def time_left(self) -> float:
        """The timeout of the next attempt: what is left of the deadline."""
        return max(0.0, self.deadline - time.monotonic())


class ClientChain:
    """The client chain of one channel: its endpoints, its default deadline, its tracing."""

    def __init__(
        self,
        service: str,
        endpoints: EndpointSource,
        balancer: Balancer[Any],
        *,
        default_timeout: float,
        tracing: Tracing | None,
        plaintext: bool = False,
    ) -> None:
        """`plaintext`: the channel has no identity, so a failed call may be one to a
        service that requires one (see `MethodChain.explained`)."""
        self.service = service
        self.default_timeout = default_timeout
        self.tracing = tracing
        self.plaintext = plaintext
        self._endpoints = endpoints
        self._balancer = balancer
        self._subscribed = False

    def balancer(self) -> Balancer[Any]:
        """The balancer, subscribed to the endpoints on first use; NoEndpoint when the
        service is unknown or its endpoints are too stale."""
        if not self._subscribed:
            # Two first calls at once subscribe twice: harmless, updates are idempotent.
            self._balancer.update(self._endpoints.subscribe(self._balancer.update))
            self._subscribed = True
        self._endpoints.check()
        return self._balancer

    def method(self, path: str, *, retries: bool) -> MethodChain:
        """The chain for one method in one shape; `retries` is False for the shapes
        attempted once (streams, futures)."""
        return MethodChain(self, self._balancer, path, retries=retries)

    def close(self) -> list[Any]:
        """Forgets the endpoints; their open channels, for the channel to close."""
        return self._balancer.close()


class MethodChain:
    """The client chain for the calls to one method of one channel, in a given shape."""

    __slots__ = ("_balancer", "_chain", "_retries", "_retry_answered", "_spans", "path")

    def __init__(
        self, chain: ClientChain, balancer: Balancer[Any], path: str, *, retries: bool
    ) -> None:
        self._chain = chain
        self._balancer = balancer
        self.path = path
        self._retries = retries
        # A call that reached a server is repeated only if the contract says it may be.
        self._retry_answered = retries and is_idempotent(path)
        tracing = chain.tracing
        self._spans = None if tracing is None else ClientSpans(tracing, chain.service, path)

    def start(self, timeout: float | None, metadata: Any) -> OutboundCall:
        """A new call: its deadline and its client span. Raises NoEndpoint, having ended
        the call, when the service has no endpoint to try."""
        seconds = outbound_timeout(timeout, self._chain.default_timeout)
        deadline = time.monotonic() + seconds
        spans = self._spans
        if spans is None:
            call = OutboundCall(deadline, metadata, None)
        else:
            span = spans.start(metadata, seconds)
            call = OutboundCall(deadline, span.metadata, span)
        try:
            self._chain.balancer()  # subscribed, and its endpoints fresh enough
        except NoEndpoint:
            self._end(call, _UNAVAILABLE)
            raise
        return call

    def attempt(self, call: OutboundCall) -> Endpoint[Any]:
        """The endpoint of the call's next attempt, preferring one not tried yet.
        Raises NoEndpoint, having ended the call."""
        try:
            endpoint = self._balancer.pick(avoid=call.tried)
        except ServiceUnavailable as error:
            self._end(call, _UNAVAILABLE)
            raise NoEndpoint(str(error)) from error
        call.tried.append(endpoint.address)
        if call.span is not None:
            call.span.attempt(endpoint.address)
        return endpoint

    def after_failure(
        self, call: OutboundCall, endpoint: Endpoint[Any], error: grpc.RpcError
    ) -> float | None:
        """An attempt failed: the pause before the next attempt, or None when the call
        ends with this error (and has been ended)."""
        code, details = error.code(), error.details()
        connection_failed = never_reached_server(code, details)
        self._balancer.release(endpoint, connection_failed=connection_failed)
        pause = self._retry_pause(call, error, code, connection_failed)
        if pause is None:
            self._end(call, code)
        return pause

    def explained(self, error: grpc.RpcError) -> grpc.RpcError:
        """What a call that ends with `error` raises: IdentityRequired (grpc's error as
        its cause) when a plaintext channel's connection was closed in its set-up, as an
        mTLS server closes it; `error` itself otherwise. Only failed calls get here."""
        if not self._chain.plaintext:
            return error
        required = identity_required(self._chain.service, error)
        if required is None:
            return error
        required.__cause__ = error
        return required

    def after_success(self, call: OutboundCall, endpoint: Endpoint[Any]) -> None:
        """The attempt answered: the call has ended well."""
        self._balancer.release(endpoint, connection_failed=False)
        self._end(call, grpc.StatusCode.OK)

    def finish(
        self,
        call: OutboundCall,
        endpoint: Endpoint[Any],
        code: grpc.StatusCode,
        details: str | None,
    ) -> None:
        """A call attempted once (a future, a stream) has ended with `code`."""
        self._balancer.release(endpoint, connection_failed=never_reached_server(code, details))
        self._end(call, code)

    def abandon(
        self, call: OutboundCall, endpoint: Endpoint[Any] | None, code: grpc.StatusCode
    ) -> None:
        """The call ended without an answer from grpc (cancelled, or an error of ours or
        the caller's): the endpoint, if any, is released and the span ended with `code`."""
        if endpoint is not None:
            self._balancer.release(endpoint, connection_failed=False)
        self._end(call, code)

    def _retry_pause(
        self,
        call: OutboundCall,
        error: grpc.RpcError,
        code: grpc.StatusCode,
        connection_failed: bool,
    ) -> float | None:
        if not self._retries or len(call.tried) >= MAX_ATTEMPTS:
            return None
        left = call.deadline - time.monotonic()
        throttled_for = quota_retry_delay(error)
        if throttled_for is not None:
            # Refused before the handler ran: safe to repeat once the quota has a
            # token again, if that is within the deadline; never sooner.
            return throttled_for if throttled_for < left else None
        if left <= 0:
            return None
        if connection_failed or (code is _UNAVAILABLE and self._retry_answered):
            return 0.0
        return None

    @staticmethod
    def _end(call: OutboundCall, code: grpc.StatusCode) -> None:
        if call.span is not None:
            call.span.end(code)
