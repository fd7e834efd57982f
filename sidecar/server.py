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

from sidecar._authorization import Authorize, PolicySource
from sidecar._handlers import ChainInterceptor, Middleware
from sidecar._identity import VerifiedIdentity, bind_anonymous_caller
from sidecar._status_mapping import map_errors
from sidecar.deadline import record_inbound_deadline

__all__ = ["IdentitySource", "PolicySource", "Server", "ServerIdentity"]

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


# Where the server's certificate comes from: called on every new TLS handshake,
# so a renewed leaf or a rotated trust bundle is used with no restart.
IdentitySource = Callable[[], ServerIdentity]


def _server_chain(trust_domain: str | None, authorize: Authorize | None) -> list[Middleware]:
    verify: Middleware = (
        bind_anonymous_caller if trust_domain is None else VerifiedIdentity(trust_domain)
    )
    decisions: list[Middleware] = [] if authorize is None else [authorize]
    return [verify, record_inbound_deadline, *decisions, map_errors]


class Server:
    """One process's gRPC server: add services, start on a port, stop gracefully."""

    def __init__(
        self,
        *,
        identity_source: IdentitySource | None = None,
        authorization: tuple[str, PolicySource] | None = None,
        max_workers: int = 16,
    ) -> None:
        """Without an identity source the server is plaintext: for development only.

        `authorization` is (this service's name, where its access policy comes from).
        """
        self._identity_source = identity_source
        trust_domain = None if identity_source is None else identity_source().trust_domain
        self._grpc = grpc.server(
            futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="rpc"),
            interceptors=[
                ChainInterceptor(
                    _server_chain(
                        trust_domain, None if authorization is None else Authorize(*authorization)
                    )
                )
            ],
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
        # Consul's gRPC health check presents no client certificate, so an mTLS
        # server answers it on a second, plaintext port serving grpc.health.v1
        # and nothing else.
        self._health_only: grpc.Server | None = None
        self.health_port = 0

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
            if self._identity_source is None
            else self._grpc.add_secure_port(address, _mtls_credentials(self._identity_source))
        )
        if port == 0:
            raise OSError(f"could not bind {address}")
        reflection.enable_server_reflection(
            [*self._service_names, health.SERVICE_NAME, reflection.SERVICE_NAME], self._grpc
        )
        self._grpc.start()
        self.health_port = port
        if self._identity_source is not None:
            self._health_only = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._health_only)
            host = address.rpartition(":")[0]
            self.health_port = self._health_only.add_insecure_port(f"{host}:0")
            self._health_only.start()
        for name in ["", *self._service_names]:
            self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        return port

    def stop(self, grace_seconds: float) -> None:
        """Reports NOT_SERVING, refuses new calls, lets in-flight calls finish within the grace."""
        self._health.enter_graceful_shutdown()
        self._grpc.stop(grace_seconds).wait()
        if self._health_only is not None:
            self._health_only.stop(0).wait()
        self._stopped.set()

    def wait_stopped(self, timeout: float | None = None) -> bool:
        return self._stopped.wait(timeout)


def _certificate_configuration(identity: ServerIdentity) -> grpc.ServerCertificateConfiguration:
    return grpc.ssl_server_certificate_configuration(
        [(identity.private_key_pem, identity.certificate_pem)],
        root_certificates=identity.trust_bundle_pem,
    )


def _mtls_credentials(source: IdentitySource) -> grpc.ServerCredentials:
    current = source()

    def fetch() -> grpc.ServerCertificateConfiguration | None:
        nonlocal current
        latest = source()
        if latest == current:
            return None  # grpc keeps the configuration it has
        current = latest
        return _certificate_configuration(latest)

    # require_client_authentication: a caller without a certificate from our
    # bundle never gets past the handshake.
    return grpc.dynamic_ssl_server_credentials(
        _certificate_configuration(current),
        fetch,  # type: ignore[arg-type]  # grpc documents None as "keep the current one"
        require_client_authentication=True,
    )
