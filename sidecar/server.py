"""A gRPC server with the deptmesh server chain, health and reflection built in.

The chain order is declared here and only here (see ../shared/design.md):
identity, then status mapping, then the handler. Later stages (tracing, access
log, authorization, quota) slot into `_server_chain` in the designed order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from sidecar._handlers import ChainInterceptor, Middleware
from sidecar._identity import VerifiedIdentity, bind_anonymous_caller
from sidecar._status_mapping import map_errors
from sidecar.deadline import record_inbound_deadline

__all__ = ["Server", "ServerIdentity"]

# Bounds what one caller can make us buffer: 4 MiB messages, 16 KiB of metadata.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024
MAX_METADATA_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class ServerIdentity:
    """This server's own certificate and key, and the CA bundle its callers must chain to."""

    private_key_pem: bytes
    certificate_pem: bytes
    trust_bundle_pem: bytes
    trust_domain: str


def _server_chain(identity: ServerIdentity | None) -> list[Middleware]:
    verify: Middleware = (
        bind_anonymous_caller if identity is None else VerifiedIdentity(identity.trust_domain)
    )
    return [verify, record_inbound_deadline, map_errors]


class Server:
    """One process's gRPC server: add services, start on a port, stop gracefully."""

    def __init__(self, *, identity: ServerIdentity | None = None, max_workers: int = 16) -> None:
        self._identity = identity
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
            interceptors=[ChainInterceptor(_server_chain(identity))],
            options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ("grpc.max_metadata_size", MAX_METADATA_BYTES),
                ("grpc.so_reuseport", 0),
            ],
        )
        self._health = health.HealthServicer(experimental_non_blocking=True)
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._grpc)
        self._service_names: list[str] = []
        self._stopped = threading.Event()

    def add_service(
        self,
        descriptor: ServiceDescriptor,
        register: Callable[[Any, grpc.Server], None],
        servicer: object,
    ) -> None:
        """Adds a servicer, for example `add_service(desc, add_FooServicer_to_server, impl)`."""
        register(servicer, self._grpc)
        self._service_names.append(descriptor.full_name)

    def start(self, address: str = "127.0.0.1:0") -> int:
        """Starts serving on `address` (port 0 picks a free port); returns the bound port."""
        port = (
            self._grpc.add_insecure_port(address)
            if self._identity is None
            else self._grpc.add_secure_port(address, _mtls_credentials(self._identity))
        )
        if port == 0:
            raise OSError(f"could not bind {address}")
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._grpc
        )
        self._grpc.start()
        for name in ["", *self._service_names]:
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return port

    def stop(self, grace_seconds: float) -> None:
        """Reports NOT_SERVING, refuses new calls, lets in-flight calls finish within the grace."""
        self._health.enter_graceful_shutdown()
        self._grpc.stop(grace_seconds).wait()
        self._stopped.set()

    def wait_stopped(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)


def _mtls_credentials(identity: ServerIdentity) -> grpc.ServerCredentials:
    # require_client_auth: a caller without a certificate from our bundle never
    # gets past the handshake.
    return grpc.ssl_server_credentials(
        [(identity.private_key_pem, identity.certificate_pem)],
        root_certificates=identity.trust_bundle_pem,
        require_client_auth=True,
    )
