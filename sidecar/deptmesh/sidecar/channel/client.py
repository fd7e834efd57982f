"""Outbound channels: what a service's generated stubs call other departments through.

`connect(service, cache)` returns a channel over every healthy instance of a
service, found through the registry: per-call balancing, ejection of failed
endpoints, safe retries (see _service_channel.py). `dial(address)` is one fixed
address, for tools and tests. Both give every call a deadline: the caller's own
timeout or the default, never beyond the inbound call's remaining time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from deptmesh.registry.cache import EndpointCache
from deptmesh.sidecar.channel._sync import ServiceChannel
from deptmesh.sidecar.deadline.budget import outbound_timeout
from deptmesh.sidecar.identity.sources import IdentitySource
from deptmesh.sidecar.identity.spiffe import server_name
from deptmesh.sidecar.tracing import Tracing

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "ServiceChannel", "connect", "dial"]

DEFAULT_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class _CallDetails(grpc.ClientCallDetails):
    method: str
    timeout: float | None
    metadata: Any
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class _DeadlineInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """Gives every call a deadline, capped by the inbound call's remaining time."""

    def __init__(self, default_timeout: float) -> None:
        self._default = default_timeout

    def _with_deadline(self, details: grpc.ClientCallDetails) -> grpc.ClientCallDetails:
        return _CallDetails(
            method=details.method,
            timeout=outbound_timeout(details.timeout, self._default),
            metadata=details.metadata,
            credentials=details.credentials,
            wait_for_ready=details.wait_for_ready,
            compression=details.compression,
        )

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        return continuation(self._with_deadline(details), request)

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        return continuation(self._with_deadline(details), request)

    def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, requests: Any
    ) -> Any:
        return continuation(self._with_deadline(details), requests)

    def intercept_stream_stream(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, requests: Any
    ) -> Any:
        return continuation(self._with_deadline(details), requests)


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
        cache,
        default_timeout=default_timeout,
        channel_factory=factory,
        identity=identity,
        tracing=tracing,
    )


def mtls_channel_factory(service: str, identity: IdentitySource) -> Callable[[str], grpc.Channel]:
    """Opens mTLS channels that accept only a server holding `service`'s certificate.

    Each channel keeps the identity current when it was opened (grpc channel
    credentials are fixed); the balancer reopens channels when it changes.
    """

    def open_channel(address: str) -> grpc.Channel:
        mine = identity()
        credentials = grpc.ssl_channel_credentials(
            mine.trust_bundle_pem, mine.private_key_pem, mine.certificate_pem
        )
        target = server_name(service, mine.trust_domain)
        return grpc.secure_channel(
            address, credentials, options=[("grpc.ssl_target_name_override", target)]
        )

    return open_channel


def dial(address: str, *, default_timeout: float = DEFAULT_TIMEOUT_SECONDS) -> grpc.Channel:
    """A plaintext channel to one fixed `address` with the client chain applied."""
    check_timeout(default_timeout)
    channel = grpc.insecure_channel(address)
    return grpc.intercept_channel(channel, _DeadlineInterceptor(default_timeout))
