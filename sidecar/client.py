"""Outbound channels: what a service's generated stubs call other departments through.

`connect(address)` returns a grpc.Channel that the generated stubs accept, with
the client chain applied to every call: a deadline always set (the caller's own
timeout or the default, never beyond the inbound call's remaining time).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import grpc

from sidecar.deadline import outbound_timeout

__all__ = ["DEFAULT_TIMEOUT_SECONDS", "connect"]

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


def connect(address: str, *, default_timeout: float = DEFAULT_TIMEOUT_SECONDS) -> grpc.Channel:
    """A plaintext channel to `address` with the client chain applied."""
    if default_timeout <= 0:
        raise ValueError(f"default_timeout must be positive, got {default_timeout}")
    channel = grpc.insecure_channel(address)
    return grpc.intercept_channel(channel, _DeadlineInterceptor(default_timeout))
