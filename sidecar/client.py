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

from registry.cache import EndpointCache
from sidecar._service_channel import ServiceChannel
from sidecar.deadline import outbound_timeout

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
    service: str, cache: EndpointCache, *, default_timeout: float = DEFAULT_TIMEOUT_SECONDS
) -> ServiceChannel:
    """A channel over the healthy instances of `service`, as the registry cache knows them."""
    check_timeout(default_timeout)
    return ServiceChannel(service, cache, default_timeout=default_timeout)


def dial(address: str, *, default_timeout: float = DEFAULT_TIMEOUT_SECONDS) -> grpc.Channel:
    """A plaintext channel to one fixed `address` with the client chain applied."""
    check_timeout(default_timeout)
    channel = grpc.insecure_channel(address)
    return grpc.intercept_channel(channel, _DeadlineInterceptor(default_timeout))
